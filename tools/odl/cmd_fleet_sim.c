/* odl fleet simulate: the fleet simulation and aggregation run on Dask, in Python
 * (python/odl/fleet.py, docs/fleet.md); this hands "simulate ..." over to
 * `python3 -m odl.fleet` ($ODL_PYTHON, default /usr/bin/python3). */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

int cmd_fleet_simulate(int argc, char **argv)
{
    const char *py = getenv("ODL_PYTHON");
    if (!py || !*py)
        py = "/usr/bin/python3";
    /* the Python side trains a missing base with this same tool */
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self[n] = '\0';
        setenv("ODL_TOOL", self, 0);
        /* a tool in its build directory (inside the source tree): its Python
         * package and library sit beside it, so `odl fleet` works before any
         * install (an installed tool finds the installed package) */
        char *slash = strrchr(self, '/');
        if (slash && !getenv("PYTHONPATH") && (size_t)(slash - self) + 40 < sizeof self) {
            *slash = '\0';
            char pkg[4096 + 40], lib[4096 + 40];
            snprintf(pkg, sizeof pkg, "%s/../python/odl/__init__.py", self);
            snprintf(lib, sizeof lib, "%s/libodl_py.so", self);
            if (access(pkg, R_OK) == 0 && access(lib, R_OK) == 0) {
                snprintf(pkg, sizeof pkg, "%s/../python", self);
                setenv("PYTHONPATH", pkg, 1);
                setenv("ODL_LIBRARY", self, 0);
            }
        }
    }
    char **args = calloc((size_t)argc + 3, sizeof *args);
    if (!args) {
        fprintf(stderr, "odl fleet: out of memory\n");
        return 1;
    }
    args[0] = (char *)py;
    args[1] = "-m";
    args[2] = "odl.fleet";
    for (int i = 1; i < argc; i++) /* argv[0] is "fleet" */
        args[i + 2] = argv[i];
    execv(py, args);
    fprintf(stderr, "odl fleet: cannot run %s (%s); set ODL_PYTHON to a Python 3 with odl and dask.distributed\n", py,
            strerror(errno));
    free(args);
    return 1;
}
