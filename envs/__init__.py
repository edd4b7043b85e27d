"""servegym.envs: the simulators (serving engine, replica pool, edge system) and environments."""
