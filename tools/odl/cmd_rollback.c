/* odl rollback: being written (see the open issues). */
#include "cli.h"

int cmd_rollback(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return cli_error("rollback: not implemented yet") + 1;
}
