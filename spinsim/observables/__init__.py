"""Measurements on batches of states: spin models (:mod:`.spin`), cellular Potts (:mod:`.cpm`)."""
