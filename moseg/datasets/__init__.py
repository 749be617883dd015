"""Converters and generators that write the moseg HDF5 data contract."""
