"""The application: the command line (`cli`), the daemon's life cycle (`daemon`), the service that
wires every stage together (`service`) and the API handlers over it (`handlers`).

Nothing below this package imports it: the stages are built here and passed down.
"""
