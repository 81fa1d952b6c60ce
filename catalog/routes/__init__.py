"""One module per resource of the REST spec; each route names the ``operationId`` it implements."""
