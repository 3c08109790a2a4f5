/* odl quantize: being written (see the open issues). */
#include "cli.h"

int cmd_quantize(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return cli_error("quantize: not implemented yet") + 1;
}
