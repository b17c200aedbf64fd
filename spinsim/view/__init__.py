"""What users look at: console tables (:mod:`.report`) and pictures (:mod:`.render`)."""
