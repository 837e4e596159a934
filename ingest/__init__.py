"""Knowledge files -> chunks -> embeddings -> `documents`; re-embedding; tagging."""
