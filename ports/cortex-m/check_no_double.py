#!/usr/bin/env python3
"""check_no_double.py ELF ALLOWED: the Cortex-M4F's FPU is single precision,
so every double-precision operation is a call into libgcc's soft-float
routines (__aeabi_dadd, __aeabi_f2d, __muldf3, ...). Lists the firmware's
functions that call one (arm-none-eabi-objdump -d) and fails on any that is
not in ALLOWED (one function name a line, # comments): the functions that
still compute in double, each with why. An allowed function that no longer
calls one fails too, so the list only shrinks. With an empty list, the ELF
must not link any double routine at all (arm-none-eabi-nm), called or not."""
import re
import subprocess
import sys

# libgcc's double routines: AEABI names and the GCC ones they alias
DOUBLE = re.compile(r"^(__aeabi_(d[a-z0-9]+|[fiu]2d|u?l2d|cd[a-z0-9]+)|__[a-z]+df[23]|__extendsfdf2|__truncdfsf2)$")


def callers(elf):
    out = subprocess.run(["arm-none-eabi-objdump", "-d", "--no-show-raw-insn", elf], check=True,
                         capture_output=True, text=True).stdout
    fn, found = None, {}
    for line in out.splitlines():
        m = re.match(r"^[0-9a-f]+ <([^>]+)>:$", line)
        if m:
            fn = m.group(1)
            continue
        m = re.search(r"\sb(?:l|lx|\.w)?\s+[0-9a-f]+ <([^>+]+)>", line)
        if m and fn and DOUBLE.match(m.group(1)) and not DOUBLE.match(fn):
            found.setdefault(fn, set()).add(m.group(1))
    return found


def linked(elf):
    out = subprocess.run(["arm-none-eabi-nm", elf], check=True, capture_output=True, text=True).stdout
    names = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[-2] in "TtWw" and DOUBLE.match(parts[-1]):
            names.add(parts[-1])
    return names


def main():
    elf, allowed_path = sys.argv[1], sys.argv[2]
    allowed = set()
    for line in open(allowed_path):
        line = line.split("#", 1)[0].strip()
        if line:
            allowed.add(line)
    found = callers(elf)
    bad = 0
    for fn in sorted(found):
        verdict = "allowed (still double)" if fn in allowed else "NOT ALLOWED"
        bad += fn not in allowed
        print("  %-28s %-24s %s" % (fn, verdict, " ".join(sorted(found[fn]))))
    for fn in sorted(allowed - set(found)):
        print("  %-28s %-24s remove it from %s" % (fn, "no longer uses double", allowed_path))
        bad += 1
    if not allowed:
        for routine in sorted(linked(elf)):
            print("  %-28s %-24s linked into the firmware" % (routine, "NOT ALLOWED"))
            bad += 1
    print("%s      no double-precision routine outside %d listed functions (%s)"
          % ("ok" if not bad else "not ok", len(allowed), allowed_path))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
