"""The local stack: real components as local processes under supervisord."""
