"""Tests of garrison.store."""
