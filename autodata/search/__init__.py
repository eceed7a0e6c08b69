"""Policy search: DADA-style differentiable search as a training run with a learned policy."""
from autodata.search.dada import PolicySearchResult, cpu_search_config, search_config, search_policy, top_k

__all__ = ["PolicySearchResult", "cpu_search_config", "search_config", "search_policy", "top_k"]
