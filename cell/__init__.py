"""The cell controller: the authority for its own instances and hosts (placement, lifecycle, agents)."""
