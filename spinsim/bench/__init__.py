"""``spinsim bench``: the registry of cases (:mod:`.cases`) and the workloads they time."""
