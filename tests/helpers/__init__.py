"""Test helpers shared by several test modules (style rule 15)."""
