"""The monitoring-as-code config that alerts, dashboards and deploy share (a monitoring mixin's _config), and the
helpers they share: the generator runner, label matchers and the dashboards' links."""
