/* odl versions: being written (see the open issues). */
#include "cli.h"

int cmd_versions(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return cli_error("versions: not implemented yet") + 1;
}
