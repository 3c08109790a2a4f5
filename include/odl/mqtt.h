/* odl/mqtt.h — a small MQTT client for head deltas (HOST ONLY: built on
 * libmosquitto, in the odl_mqtt library, only when CMake finds
 * libmosquitto; docs/fleet-transport.md).
 *
 * MQTT 5 over TCP or TLS, QoS 1 (the broker acknowledges every delta). A client
 * tells the broker the largest packet it takes (max_packet, MQTT 5's
 * Maximum Packet Size), so a broker never hands it a message larger than a
 * delta can be. Blocking calls with a deadline; one thread per client. */
#ifndef ODL_MQTT_H
#define ODL_MQTT_H

#include <stddef.h>
#include <stdint.h>
#include "odl/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct odl_mqtt odl_mqtt;

/* Parses "HOST:PORT" (PORT 1..65535; HOST a name, an IPv4 address or an
 * IPv6 address in brackets, "[::1]:1883") into host (cap bytes) and port. */
odl_status odl_mqtt_parse_broker(const char *spec, char *host, size_t cap, int *port, odl_diag *d);

/* How to reach the broker. Zero/NULL fields take the defaults. */
typedef struct odl_mqtt_opts {
    const char *client_id;   /* NULL: a random id from the library */
    uint32_t max_packet;     /* the largest MQTT packet this client accepts (0: no limit) */
    const char *tls_ca;      /* PEM file of the CA that signed the broker's certificate: TLS,
                                with the certificate and the host name checked; NULL: plain TCP */
    const char *username;    /* the broker's user name and password (NULL: none) */
    const char *password;
    uint32_t session_expiry; /* 0: a clean session, forgotten at disconnect. > 0: a persistent session
                                (MQTT 5 Clean Start 0 and this Session Expiry Interval in seconds)
                                under client_id, which is then required: the broker keeps this
                                client's subscriptions and queues its QoS 1 messages while it is
                                away, for up to this many seconds */
} odl_mqtt_opts;

/* Connects to host:port, waiting at most timeout_s for the broker's CONNACK.
 * *resumed (may be NULL) is set to 1 when the broker still held this
 * client's persistent session (MQTT's Session Present), 0 otherwise. */
odl_status odl_mqtt_connect(odl_mqtt **out, const char *host, int port, const odl_mqtt_opts *opts,
                            double timeout_s, int *resumed, odl_diag *d);

/* Publishes payload to topic with QoS 1 and waits for the broker's PUBACK
 * (at most timeout_s). */
odl_status odl_mqtt_publish(odl_mqtt *c, const char *topic, const void *payload, size_t len, double timeout_s,
                            odl_diag *d);
/* The same as a retained message: the broker keeps it (the last one per
 * topic) and hands it to every client that subscribes later. */
odl_status odl_mqtt_publish_retained(odl_mqtt *c, const char *topic, const void *payload, size_t len,
                                     double timeout_s, odl_diag *d);

/* A message arrived: return 0 to go on, non-zero to stop odl_mqtt_run. */
typedef int (*odl_mqtt_on_message)(void *ctx, const char *topic, const void *payload, size_t len);

/* Subscribes to a topic filter with QoS 1 and waits for the SUBACK. */
odl_status odl_mqtt_subscribe(odl_mqtt *c, const char *filter, double timeout_s, odl_diag *d);

/* Hands each arriving message to cb until cb returns non-zero (ODL_OK) or
 * timeout_s passes (ODL_ERR_NOT_FOUND: "timed out"). A lost connection is
 * ODL_ERR_IO. Messages that arrive in the same network read as the one that
 * stopped it are handed to cb too (the client acknowledges every message it
 * reads, so one left out would be lost to a persistent session). */
odl_status odl_mqtt_run(odl_mqtt *c, odl_mqtt_on_message cb, void *ctx, double timeout_s, odl_diag *d);

/* Disconnects and frees (NULL allowed). */
void odl_mqtt_close(odl_mqtt *c);

#ifdef __cplusplus
}
#endif
#endif
