"""Test support: cassette replay, subprocess harness, example apps."""
