"""Tests of infocam_exp.models."""
