"""Search over the data side: differentiable policy search (DADA) on the bilevel engine."""
from autodata.search.dada import PolicySearchConfig, PolicySearchResult, search_policy

__all__ = ["PolicySearchConfig", "PolicySearchResult", "search_policy"]
