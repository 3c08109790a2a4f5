/* odl drift: being written (see the open issues). */
#include "cli.h"

int cmd_drift(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return cli_error("drift: not implemented yet") + 1;
}
