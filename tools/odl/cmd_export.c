/* odl export-c: a .odl file as a C array, for firmware that parses it in
 * place from flash (odl_file_* / odl_qfile_* / odl_model_load_params with
 * cfg.frozen_weights_in_place). The array is 16-byte aligned, as in-place
 * weights require. The file is validated first (every CRC, the topology and,
 * when present, every INT8 chunk), so a firmware never embeds a bad model. */
#define _POSIX_C_SOURCE 200809L
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "odl/quant.h"


static void help(FILE *f)
{
    fputs("usage: odl export-c MODEL.odl -o OUT.c [--name NAME] [--int8-prefix QFILE] [--header OUT.h]\n"
          "\n"
          "Writes MODEL.odl (an FP32 file, or the INT8 one written by 'odl quantize')\n"
          "as a 16-byte-aligned 'const uint8_t NAME[]' plus 'const size_t NAME_len',\n"
          "so a firmware parses it in place from flash. The file is validated first.\n"
          "\n"
          "  -o, --output FILE     the C file to write\n"
          "  --name NAME           the array's name (a C identifier; default odl_model)\n"
          "  --int8-prefix QFILE   also export QFILE (an 'odl quantize' output with the\n"
          "                        same topology as MODEL) as NAME_int8 / NAME_int8_len\n"
          "  --header FILE         also write a header declaring the arrays\n",
          f);
}

static int valid_ident(const char *s)
{
    if (!s || !*s || !(isalpha((unsigned char)*s) || *s == '_'))
        return 0;
    for (; *s; s++)
        if (!(isalnum((unsigned char)*s) || *s == '_'))
            return 0;
    return 1;
}

/* Reads and validates a model file; want_q: 1 = must have INT8 layers. */
static int load_checked(const char *path, int want_q, void **buf, size_t *len, odl_model_desc *desc, int *has_q)
{
    odl_diag d;
    odl_diag_clear(&d);
    odl_status s = odl_host_read_file(path, buf, len, &d);
    if (s != ODL_OK)
        return cli_fail(path, s, &d);
    s = odl_host_read_desc(*buf, *len, desc, &d);
    if (s != ODL_OK) {
        odl_host_free(*buf);
        return cli_fail(path, s, &d);
    }
    odl_model_desc qd;
    int32_t boundary;
    s = odl_host_desc_copy(&qd, desc, desc->n_layers, &d);
    if (s == ODL_OK)
        s = odl_qfile_read_desc(*buf, *len, &qd, &boundary, &d);
    odl_host_desc_free(&qd);
    *has_q = s == ODL_OK;
    if (s != ODL_OK && (s != ODL_ERR_NOT_FOUND || want_q)) {
        odl_host_free(*buf);
        odl_host_desc_free(desc);
        return cli_fail(path, s, &d);
    }
    return 0;
}

/* A file name as it may appear in a C comment: the base name only, every
 * byte but letters, digits and ._+- replaced by '_' (a name holding star-slash
 * cannot end the comment and inject code). */
static void comment_name(const char *path, char *out, size_t cap)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t n = 0;
    for (; *base && n + 1 < cap; base++, n++)
        out[n] = isalnum((unsigned char)*base) || strchr("._+-", *base) ? *base : '_';
    out[n] = '\0';
}

static void write_array(FILE *f, const char *name, const char *path, const uint8_t *p, size_t n)
{
    char src[256];
    comment_name(path, src, sizeof src);
    fprintf(f,
            "/* %s: %zu bytes. 16-byte aligned: frozen weights are used in place. */\n"
            "_Alignas(16) const uint8_t %s[%zu] = {\n",
            src, n, name, n ? n : 1);
    for (size_t i = 0; i < n; i++) {
        fprintf(f, "%s0x%02x,", i % 16 ? "" : "    ", p[i]);
        if (i % 16 == 15 || i + 1 == n)
            fputc('\n', f);
    }
    if (!n)
        fputs("    0\n", f);
    fprintf(f, "};\nconst size_t %s_len = %zu;\n\n", name, n);
}

int cmd_export(int argc, char **argv)
{
    const char *in = NULL, *out = NULL, *name = "odl_model", *qpath = NULL, *hpath = NULL;
    cli_args a = {argc, argv, 1, "export-c"};
    for (; a.i < argc; a.i++) {
        const char *v;
        int r;
        if (!strcmp(argv[a.i], "--help") || !strcmp(argv[a.i], "-h")) {
            help(stdout);
            return 0;
        }
        if ((r = cli_opt(&a, "-o", &v)) || (r = cli_opt(&a, "--output", &v))) {
            if (r < 0)
                return 2;
            out = v;
        } else if ((r = cli_opt(&a, "--name", &v))) {
            if (r < 0)
                return 2;
            name = v;
        } else if ((r = cli_opt(&a, "--int8-prefix", &v))) {
            if (r < 0)
                return 2;
            qpath = v;
        } else if ((r = cli_opt(&a, "--header", &v))) {
            if (r < 0)
                return 2;
            hpath = v;
        } else if (argv[a.i][0] == '-' && argv[a.i][1]) {
            cli_error("export-c: unknown option '%s' (try 'odl export-c --help')", argv[a.i]);
            return 2;
        } else if (!in) {
            in = argv[a.i];
        } else {
            cli_error("export-c: more than one model given ('%s' and '%s')", in, argv[a.i]);
            return 2;
        }
    }
    if (!in || !out) {
        help(stderr);
        return 2;
    }
    if (!valid_ident(name)) {
        cli_error("export-c: --name '%s' is not a C identifier", name);
        return 2;
    }
    /* outputs: writable, not an input, not each other */
    const char *ins[] = {in, qpath, NULL};
    int rc = cli_check_output("-o", out, ins, 2);
    if (!rc && hpath) {
        ins[2] = out;
        rc = cli_check_output("--header", hpath, ins, 3);
    }
    if (rc)
        return rc;
    void *buf = NULL, *qbuf = NULL;
    size_t len = 0, qlen = 0;
    odl_model_desc desc, qdesc;
    int has_q = 0, q_has_q = 0;
    if (load_checked(in, 0, &buf, &len, &desc, &has_q))
        return 1;
    if (qpath) {
        if (load_checked(qpath, 1, &qbuf, &qlen, &qdesc, &q_has_q)) {
            odl_host_desc_free(&desc);
            odl_host_free(buf);
            return 1;
        }
        const int same = desc.in_c == qdesc.in_c && desc.in_h == qdesc.in_h && desc.in_w == qdesc.in_w &&
                         desc.n_layers == qdesc.n_layers && desc.softmax_output == qdesc.softmax_output &&
                         memcmp(desc.layers, qdesc.layers, sizeof(odl_node_desc) * (size_t)desc.n_layers) == 0;
        odl_host_desc_free(&qdesc);
        if (!same) {
            odl_host_desc_free(&desc);
            odl_host_free(buf);
            odl_host_free(qbuf);
            return cli_error("export-c: %s and %s have different topologies", in, qpath);
        }
    }
    odl_host_desc_free(&desc);
    char in_name[256], q_name[256];
    comment_name(in, in_name, sizeof in_name);
    comment_name(qpath ? qpath : "", q_name, sizeof q_name);
    cli_outfile co, ho;
    memset(&ho, 0, sizeof ho);
    if (cli_outfile_open(&co, out) || (hpath && cli_outfile_open(&ho, hpath))) {
        cli_outfile_discard(&co);
        odl_host_free(buf);
        odl_host_free(qbuf);
        return 1;
    }
    fprintf(co.f,
            "/* Generated by 'odl export-c' from %s%s%s: do not edit. */\n"
            "#include <stddef.h>\n#include <stdint.h>\n\n",
            in_name, qpath ? " and " : "", qpath ? q_name : "");
    char qname[512];
    snprintf(qname, sizeof qname, "%s_int8", name);
    write_array(co.f, name, in, buf, len);
    if (qbuf)
        write_array(co.f, qname, qpath, qbuf, qlen);
    if (hpath) {
        fprintf(ho.f, "/* Generated by 'odl export-c': do not edit. */\n#pragma once\n"
                      "#include <stddef.h>\n#include <stdint.h>\n"
                      "extern const uint8_t %s[];\nextern const size_t %s_len;\n", name, name);
        if (qbuf)
            fprintf(ho.f, "extern const uint8_t %s[];\nextern const size_t %s_len;\n", qname, qname);
    }
    int bad = cli_outfile_commit(&co);
    if (hpath) {
        if (bad)
            cli_outfile_discard(&ho);
        else
            bad = cli_outfile_commit(&ho);
    }
    if (bad) {
        odl_host_free(buf);
        odl_host_free(qbuf);
        return 1;
    }
    printf("exported %s (%zu bytes, %s) as %s%s%s to %s\n", in, len, has_q ? "FP32 + INT8 layers" : "FP32", name,
           qbuf ? " and " : "", qbuf ? qname : "", out);
    odl_host_free(buf);
    odl_host_free(qbuf);
    return 0;
}
