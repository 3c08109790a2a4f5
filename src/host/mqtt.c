/* odl/mqtt.h over libmosquitto: MQTT 5, QoS 1, blocking calls with
 * deadlines on one thread (mosquitto_loop, no background thread). */
#define _POSIX_C_SOURCE 200809L
#include "odl/mqtt.h"

#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A message that arrived before odl_mqtt_run (a resumed session's queue is
 * sent right after the CONNACK, before the subscription is even renewed). */
typedef struct pending {
    struct pending *next;
    char *topic;
    size_t len;
    unsigned char payload[];
} pending;

struct odl_mqtt {
    struct mosquitto *m;
    int connack;          /* -1 waiting, else the CONNACK reason */
    int session_present;  /* CONNACK's Session Present flag */
    int puback_mid;       /* the last acknowledged message id */
    int puback_reason;
    int suback_mid;
    int suback_qos;
    int lost;             /* the connection went away */
    odl_mqtt_on_message cb;
    void *cb_ctx;
    int stop;
    pending *first, *last;  /* messages waiting for odl_mqtt_run */
    int out_of_memory;      /* one could not be kept */
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void on_connect(struct mosquitto *m, void *obj, int rc, int flags, const mosquitto_property *props)
{
    (void)m;
    (void)props;
    ((odl_mqtt *)obj)->session_present = (flags & 1) != 0;
    ((odl_mqtt *)obj)->connack = rc;
}

static void on_disconnect(struct mosquitto *m, void *obj, int rc, const mosquitto_property *props)
{
    (void)m;
    (void)rc;
    (void)props;
    ((odl_mqtt *)obj)->lost = 1;
}

static void on_publish(struct mosquitto *m, void *obj, int mid, int reason, const mosquitto_property *props)
{
    (void)m;
    (void)props;
    odl_mqtt *c = obj;
    c->puback_mid = mid;
    c->puback_reason = reason;
}

static void on_subscribe(struct mosquitto *m, void *obj, int mid, int n, const int *granted,
                         const mosquitto_property *props)
{
    (void)m;
    (void)props;
    odl_mqtt *c = obj;
    c->suback_mid = mid;
    c->suback_qos = n > 0 ? granted[0] : 128;
}

static void on_message(struct mosquitto *m, void *obj, const struct mosquitto_message *msg,
                       const mosquitto_property *props)
{
    (void)m;
    (void)props;
    odl_mqtt *c = obj;
    /* after a stop, messages read in the same mosquitto_loop still go to cb:
     * libmosquitto acknowledges each, so the broker would not send it again */
    if (msg->payloadlen < 0)
        return;
    if (!c->cb) {
        const size_t n = (size_t)msg->payloadlen, tl = msg->topic ? strlen(msg->topic) : 0;
        pending *p = malloc(sizeof *p + n + tl + 1);
        if (!p) {
            c->out_of_memory = 1;
            return;
        }
        p->next = NULL;
        p->len = n;
        if (n)
            memcpy(p->payload, msg->payload, n);
        p->topic = (char *)p->payload + n;
        if (tl)
            memcpy(p->topic, msg->topic, tl);
        p->topic[tl] = '\0';
        if (c->last)
            c->last->next = p;
        else
            c->first = p;
        c->last = p;
        return;
    }
    if (c->cb(c->cb_ctx, msg->topic ? msg->topic : "", msg->payload, (size_t)msg->payloadlen))
        c->stop = 1;
}

static void lib_init(void)
{
    /* mosquitto_lib_init is reference-counted in libmosquitto 2 and cheap */
    mosquitto_lib_init();
}

odl_status odl_mqtt_parse_broker(const char *spec, char *host, size_t cap, int *port, odl_diag *d)
{
    if (!spec || !host || !port || cap < 2)
        return odl_fail(d, ODL_ERR_ARG, "broker: no address given (want HOST:PORT)");
    const char *colon = NULL, *h = spec;
    size_t hl;
    if (spec[0] == '[') {
        const char *end = strchr(spec, ']');
        if (!end || end[1] != ':')
            return odl_fail(d, ODL_ERR_ARG, "broker '%s': an IPv6 address goes in brackets: [::1]:1883", spec);
        h = spec + 1;
        hl = (size_t)(end - h);
        colon = end + 1;
    } else {
        colon = strrchr(spec, ':');
        if (!colon)
            return odl_fail(d, ODL_ERR_ARG, "broker '%s': no port (want HOST:PORT, e.g. localhost:1883)", spec);
        hl = (size_t)(colon - spec);
    }
    if (hl == 0 || hl >= cap)
        return odl_fail(d, ODL_ERR_ARG, "broker '%s': the host name is empty or longer than %zu bytes", spec,
                        cap - 1);
    for (size_t i = 0; i < hl; i++) {
        const unsigned char ch = (unsigned char)h[i];
        if (ch <= ' ' || ch >= 0x7f)
            return odl_fail(d, ODL_ERR_ARG, "broker '%s': the host name holds a space or a control byte", spec);
    }
    long p = 0;
    const char *q = colon + 1;
    if (!*q)
        return odl_fail(d, ODL_ERR_ARG, "broker '%s': no port after ':'", spec);
    for (; *q; q++) {
        if (*q < '0' || *q > '9' || p > 65535)
            return odl_fail(d, ODL_ERR_ARG, "broker '%s': the port is not a number 1..65535", spec);
        p = p * 10 + (*q - '0');
    }
    if (p < 1 || p > 65535)
        return odl_fail(d, ODL_ERR_ARG, "broker '%s': port %ld out of range 1..65535", spec, p);
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = (int)p;
    return ODL_OK;
}

/* Runs the network loop until *flag changes from `waiting` or the deadline. */
static int pump(odl_mqtt *c, const volatile int *flag, int waiting, double deadline)
{
    while (*flag == waiting && !c->lost) {
        const double left = deadline - now_s();
        if (left <= 0)
            return 0;
        int ms = left > 0.1 ? 100 : (int)(left * 1000) + 1;
        int rc = mosquitto_loop(c->m, ms, 1);
        if (rc != MOSQ_ERR_SUCCESS)
            c->lost = 1; /* a refusing CONNACK ends the loop too: its reason is in *flag */
    }
    return *flag != waiting;
}

odl_status odl_mqtt_connect(odl_mqtt **out, const char *host, int port, const odl_mqtt_opts *opts,
                            double timeout_s, int *resumed, odl_diag *d)
{
    static const odl_mqtt_opts none = {NULL, 0, NULL, NULL, NULL, 0};
    if (!out || !host)
        return odl_fail(d, ODL_ERR_ARG, "odl_mqtt_connect: out and host must not be NULL");
    if (!opts)
        opts = &none;
    *out = NULL;
    if (resumed)
        *resumed = 0;
    const int persistent = opts->session_expiry > 0;
    if (persistent && (!opts->client_id || !*opts->client_id))
        return odl_fail(d, ODL_ERR_ARG, "mqtt: a persistent session (session expiry %u s) needs a fixed client id",
                        (unsigned)opts->session_expiry);
    odl_mqtt *c = calloc(1, sizeof *c);
    if (!c)
        return odl_fail(d, ODL_ERR_NOMEM, "mqtt: out of memory");
    lib_init(); /* undone by odl_mqtt_close */
    c->connack = -1;
    c->puback_mid = -1;
    c->suback_mid = -1;
    /* MQTT 5: clean_session false is Clean Start 0 (resume the session the broker holds) */
    c->m = mosquitto_new(opts->client_id, !persistent, c);
    if (!c->m) {
        free(c);
        return odl_fail(d, ODL_ERR_NOMEM, "mqtt: cannot create a client (out of memory, or a bad client id)");
    }
    mosquitto_int_option(c->m, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
    mosquitto_connect_v5_callback_set(c->m, on_connect);
    mosquitto_disconnect_v5_callback_set(c->m, on_disconnect);
    mosquitto_publish_v5_callback_set(c->m, on_publish);
    mosquitto_subscribe_v5_callback_set(c->m, on_subscribe);
    mosquitto_message_v5_callback_set(c->m, on_message);
    int rc = MOSQ_ERR_SUCCESS;
    if (opts->tls_ca) {
        /* the broker's certificate must chain to this CA and name the host */
        rc = mosquitto_tls_set(c->m, opts->tls_ca, NULL, NULL, NULL, NULL);
        if (rc == MOSQ_ERR_SUCCESS)
            rc = mosquitto_tls_opts_set(c->m, 1, NULL, NULL);
        if (rc != MOSQ_ERR_SUCCESS) {
            odl_status s = odl_fail(d, ODL_ERR_ARG, "mqtt: cannot use the CA file %s for TLS: %s", opts->tls_ca,
                                    mosquitto_strerror(rc));
            odl_mqtt_close(c);
            return s;
        }
    }
    if (opts->username && (rc = mosquitto_username_pw_set(c->m, opts->username, opts->password)) != MOSQ_ERR_SUCCESS) {
        odl_status s = odl_fail(d, ODL_ERR_ARG, "mqtt: bad user name or password: %s", mosquitto_strerror(rc));
        odl_mqtt_close(c);
        return s;
    }
    mosquitto_property *props = NULL;
    if (opts->max_packet)
        mosquitto_property_add_int32(&props, MQTT_PROP_MAXIMUM_PACKET_SIZE, opts->max_packet);
    if (persistent)
        mosquitto_property_add_int32(&props, MQTT_PROP_SESSION_EXPIRY_INTERVAL, opts->session_expiry);
    rc = mosquitto_connect_bind_v5(c->m, host, port, 60, NULL, props);
    mosquitto_property_free_all(&props);
    if (rc != MOSQ_ERR_SUCCESS) {
        odl_status s = odl_fail(d, ODL_ERR_IO, "mqtt: cannot connect to %s:%d: %s", host, port,
                                rc == MOSQ_ERR_ERRNO ? "connection refused or unreachable"
                                : rc == MOSQ_ERR_TLS ? "TLS handshake failed (certificate not signed by the CA, "
                                                       "or not for this host name?)"
                                                     : mosquitto_strerror(rc));
        odl_mqtt_close(c);
        return s;
    }
    if (!pump(c, &c->connack, -1, now_s() + timeout_s)) {
        odl_status s = odl_fail(d, ODL_ERR_IO, "mqtt: no answer from the broker at %s:%d within %.1f s%s", host, port,
                                timeout_s, opts->tls_ca ? " (a TLS handshake that failed? check the CA and the host "
                                                          "name)" : " (a TLS port? give --tls-ca)");
        odl_mqtt_close(c);
        return s;
    }
    if (c->connack != 0) {
        odl_status s = odl_fail(d, ODL_ERR_IO, "mqtt: the broker at %s:%d refused the connection: %s", host, port,
                                mosquitto_reason_string(c->connack));
        odl_mqtt_close(c);
        return s;
    }
    if (resumed)
        *resumed = c->session_present;
    *out = c;
    return ODL_OK;
}

static odl_status publish(odl_mqtt *c, const char *topic, const void *payload, size_t len, int retain,
                          double timeout_s, odl_diag *d)
{
    if (!c || !topic || (!payload && len))
        return odl_fail(d, ODL_ERR_ARG, "odl_mqtt_publish: client and topic must not be NULL");
    if (len > 268435455u)
        return odl_fail(d, ODL_ERR_ARG, "mqtt: a %zu-byte message is over MQTT's 256 MB limit", len);
    int mid = 0;
    int rc = mosquitto_publish_v5(c->m, &mid, topic, (int)len, payload, 1, retain != 0, NULL);
    if (rc != MOSQ_ERR_SUCCESS)
        return odl_fail(d, ODL_ERR_IO, "mqtt: cannot publish to '%s': %s", topic, mosquitto_strerror(rc));
    const double deadline = now_s() + timeout_s;
    while (c->puback_mid != mid) {
        const int before = c->puback_mid;
        if (!pump(c, &c->puback_mid, before, deadline))
            return odl_fail(d, ODL_ERR_IO, "mqtt: the broker did not acknowledge the message to '%s' within %.1f s%s",
                            topic, timeout_s, c->lost ? " (connection lost)" : "");
    }
    if (c->puback_reason >= 0x80)
        return odl_fail(d, ODL_ERR_IO, "mqtt: the broker refused the message to '%s': %s", topic,
                        mosquitto_reason_string(c->puback_reason));
    return ODL_OK;
}

odl_status odl_mqtt_publish(odl_mqtt *c, const char *topic, const void *payload, size_t len, double timeout_s,
                            odl_diag *d)
{
    return publish(c, topic, payload, len, 0, timeout_s, d);
}

odl_status odl_mqtt_publish_retained(odl_mqtt *c, const char *topic, const void *payload, size_t len,
                                     double timeout_s, odl_diag *d)
{
    return publish(c, topic, payload, len, 1, timeout_s, d);
}

odl_status odl_mqtt_subscribe(odl_mqtt *c, const char *filter, double timeout_s, odl_diag *d)
{
    if (!c || !filter)
        return odl_fail(d, ODL_ERR_ARG, "odl_mqtt_subscribe: client and filter must not be NULL");
    int mid = 0;
    int rc = mosquitto_subscribe_v5(c->m, &mid, filter, 1, 0, NULL);
    if (rc != MOSQ_ERR_SUCCESS)
        return odl_fail(d, ODL_ERR_IO, "mqtt: cannot subscribe to '%s': %s", filter, mosquitto_strerror(rc));
    const double deadline = now_s() + timeout_s;
    while (c->suback_mid != mid) {
        const int before = c->suback_mid;
        if (!pump(c, &c->suback_mid, before, deadline))
            return odl_fail(d, ODL_ERR_IO, "mqtt: no subscription acknowledgement for '%s' within %.1f s", filter,
                            timeout_s);
    }
    if (c->suback_qos >= 0x80)
        return odl_fail(d, ODL_ERR_IO, "mqtt: the broker refused the subscription to '%s': %s", filter,
                        mosquitto_reason_string(c->suback_qos));
    return ODL_OK;
}

odl_status odl_mqtt_run(odl_mqtt *c, odl_mqtt_on_message cb, void *ctx, double timeout_s, odl_diag *d)
{
    if (!c || !cb)
        return odl_fail(d, ODL_ERR_ARG, "odl_mqtt_run: client and callback must not be NULL");
    if (c->out_of_memory)
        return odl_fail(d, ODL_ERR_NOMEM, "mqtt: out of memory keeping a message that arrived before the run");
    c->stop = 0;
    /* the messages that arrived before the run first, all of them (each was acknowledged) */
    while (c->first) {
        pending *p = c->first;
        c->first = p->next;
        if (!c->first)
            c->last = NULL;
        if (cb(ctx, p->topic, p->payload, p->len))
            c->stop = 1;
        free(p);
    }
    c->cb = cb;
    c->cb_ctx = ctx;
    pump(c, &c->stop, 0, now_s() + timeout_s);
    c->cb = NULL;
    if (c->stop)
        return ODL_OK;
    if (c->lost)
        return odl_fail(d, ODL_ERR_IO, "mqtt: the connection to the broker was lost");
    return odl_fail(d, ODL_ERR_NOT_FOUND, "mqtt: timed out after %.1f s", timeout_s);
}

void odl_mqtt_close(odl_mqtt *c)
{
    if (!c)
        return;
    if (c->m) {
        if (c->connack == 0 && !c->lost) {
            mosquitto_disconnect_v5(c->m, 0, NULL);
            mosquitto_loop(c->m, 50, 1); /* let the DISCONNECT go out */
        }
        mosquitto_destroy(c->m);
    }
    while (c->first) {
        pending *p = c->first;
        c->first = p->next;
        free(p);
    }
    free(c);
    mosquitto_lib_cleanup();
}
