"""The drift service (issue: drift service). Nothing is built here yet."""
