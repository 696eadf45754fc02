"""A real model server instrumented with the inference SDK, for the tests and the demo."""
