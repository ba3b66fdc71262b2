"""``make chaos``: a mixed, partly hostile workload through every door of the running stack
while a nemesis kills its processes, then a Jepsen-style check of what happened.

Modules: :mod:`.plan` (the workload and fault schedule as data), :mod:`.content` (what each
operation sends), :mod:`.doors` (the clients), :mod:`.observe` (reading the run back),
:mod:`.checker` (the pure verdict), :mod:`.run` (the phases), ``python -m bsm_devstack.chaos``.
"""
