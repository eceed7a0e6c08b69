"""Policy search: DADA-style differentiable search over the user's own data
(:func:`search_augmentation`) or as a training run with a learned policy (:func:`search_policy`)."""
from autodata.search.api import SearchResult, search_augmentation
from autodata.search.dada import PolicySearchResult, cpu_search_config, search_config, search_policy, top_k

__all__ = [
    "PolicySearchResult",
    "SearchResult",
    "cpu_search_config",
    "search_augmentation",
    "search_config",
    "search_policy",
    "top_k",
]
