"""The ensemble compiler: a build tool (registry → statemachines/*.asl.json), never in the Lambda layer."""
