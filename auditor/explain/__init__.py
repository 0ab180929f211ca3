"""Explanation tooling: attribution maps (captum), their faithfulness and sanity, and model-level views."""
