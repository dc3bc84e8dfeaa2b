"""`cellctl`, the user and operator CLI, beside the SDK it drives (cellapi.client). The command group is
cellapi.cli.main; the other modules are its parts (options, rendering, sessions, waiting, errors). Nothing
is imported here, so `import cellapi.cli.render` stays as light as the module itself."""
