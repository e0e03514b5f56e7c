"""The AWS Marketplace Metering connector: operations table, client, validation, runner."""
