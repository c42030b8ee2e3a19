"""Tests of infocam_exp.data."""
