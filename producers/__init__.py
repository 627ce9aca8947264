"""The entrance of the pipeline: the HTTP gateway, the Kafka producer side and the upload CLI."""
