/* Runs `odl export-c` (tools/odl/cmd_export.c) on its own, for a tool
 * binary that does not dispatch the command yet. Host only. */
int cmd_export(int argc, char **argv);
int main(int argc, char **argv) { return cmd_export(argc, argv); /* argv[0] stands for "export-c" */ }
