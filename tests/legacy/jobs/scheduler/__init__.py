"""004's Django app package; tablebeat's own ``scheduler`` package extends its path to this one."""
