"""Pure rules: no I/O, no clock reads. Everything here is unit- and property-tested."""
