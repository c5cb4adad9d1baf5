"""Development tools: benchmarks, the demo and the platform simulators. Never imported by shared/."""
