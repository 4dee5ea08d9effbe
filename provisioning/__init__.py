"""Turning a blank image into one school's device (identity, keys, Wi-Fi, units). To come."""
