"""Pure span processing: the batch data model and the processors. Never imports `gateway`."""
