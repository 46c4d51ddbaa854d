"""Fixtures for the energy tests: the fake NVML library and its scenario file."""

from tests.fakes.fake_nvml import fake_nvml_build, fake_nvml_lib, fake_nvml_scenario

__all__ = ["fake_nvml_build", "fake_nvml_lib", "fake_nvml_scenario"]
