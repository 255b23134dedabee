/*
 * test_config.c: the configuration engine on its own, with a schema made up here that
 * has a key of every type. What a program gets from its table: defaults, layering,
 * origins, did-you-mean, messages worded from the schema, --help and the printout.
 * The real programs' schemas are tested in test_settings.c.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "qpc/config.h"
#include "qpc/error.h"

/* A made-up program: a weather station that reports to a few hubs. */
struct station {
    char *name;
    char *hub;
    char *mode;
    int64_t interval;
    bool verbose;
    struct qpc_config_strings sensors;
    struct qpc_config_strings links;
    char *site;
    struct qpc_config_table hubs;
};

static const char *const modes[] = { "fast", "slow", "off", NULL };

static const struct qpc_config_table_spec hub_spec = {
    .noun = "hub", .nouns = "hubs", .short_noun = "hub", .name_word = "site",
    .example = "192.0.2.1:9000", .max_entries = 3,
};

#define ST(f) offsetof(struct station, f)

static const struct qpc_config_key station_keys[] = {
    { .name = "name", .flag = "--name", .type = QPC_CONFIG_STRING, .env = "WX_NAME",
      .def = "wx", .offset = ST(name), .metavar = "TEXT", .help = "what the station is called" },
    { .name = "hub", .flag = "--hub", .type = QPC_CONFIG_ADDR, .env = "WX_HUB", .def = "",
      .offset = ST(hub), .flags = QPC_CONFIG_EMPTY_OK, .metavar = "HOST:PORT",
      .help = "hub to report to" },
    { .name = "mode", .flag = "--mode", .type = QPC_CONFIG_ENUM, .env = "WX_MODE",
      .def = "slow", .offset = ST(mode), .choices = modes, .metavar = "MODE",
      .help = "how often to sample" },
    { .name = "interval", .flag = "--interval", .type = QPC_CONFIG_INT, .env = "WX_INTERVAL",
      .def = "60", .offset = ST(interval), .min = 1, .max = 3600, .metavar = "SECONDS",
      .help = "seconds between reports" },
    { .name = "verbose", .flag = "--verbose", .type = QPC_CONFIG_BOOL, .env = NULL,
      .def = "false", .offset = ST(verbose), .metavar = "BOOL", .help = "say more" },
    { .name = "sensors", .flag = "--sensors", .type = QPC_CONFIG_LIST, .env = "WX_SENSORS",
      .def = "temp,wind", .offset = ST(sensors), .metavar = "A,B",
      .help = "sensors to read" },
    { .name = "links", .flag = "--links", .type = QPC_CONFIG_LIST, .env = "WX_LINKS",
      .def = "", .offset = ST(links), .flags = QPC_CONFIG_IFNAME, .metavar = "IF,...",
      .help = "interfaces to use" },
    { .name = "site", .flag = "--site", .type = QPC_CONFIG_STRING, .env = "WX_SITE",
      .def = "", .offset = ST(site), .flags = QPC_CONFIG_HOSTNAME | QPC_CONFIG_EMPTY_OK,
      .metavar = "DOMAIN", .help = "this station's site" },
    { .name = "hubs", .flag = "--hubs", .type = QPC_CONFIG_TABLE, .env = "WX_HUBS", .def = "",
      .offset = ST(hubs), .table = &hub_spec, .metavar = "SITE=HOST:PORT,...",
      .help = "hubs by site" },
};

static const struct qpc_config_schema station = {
    .program = "wx-station", .keys = station_keys,
    .key_count = sizeof(station_keys) / sizeof(station_keys[0]),
    .values_size = sizeof(struct station),
};

static struct qpc_config *new_station(void)
{
    struct qpc_config *cfg = NULL;
    assert_int_equal(qpc_config_new(&cfg, &station), 0);
    assert_non_null(cfg);
    return cfg;
}

static const struct station *values(const struct qpc_config *cfg)
{
    return qpc_config_values(cfg);
}

static int load(struct qpc_config *cfg, const char *text, char *err, size_t errlen)
{
    return qpc_config_load_buffer(cfg, "wx.toml", text, strlen(text), err, errlen);
}

/* Loads text into a fresh config and expects QPC_ERR_CONFIG with exactly want. */
static void expect_file_error(const char *text, const char *want)
{
    struct qpc_config *cfg = new_station();
    char err[512] = "";
    int rc = load(cfg, text, err, sizeof(err));
    if (rc != QPC_ERR_CONFIG || strcmp(err, want) != 0)
        fail_msg("input:\n%s\nrc=%d err=\"%s\"\nwanted \"%s\"", text, rc, err, want);
    qpc_config_free(cfg);
}

static char *print_to_string(const struct qpc_config *cfg)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    assert_non_null(f);
    assert_int_equal(qpc_config_print(cfg, f), 0);
    fclose(f);
    return out;
}

static void test_config_defaults_fill_the_programs_struct(void **state)
{
    (void)state;
    struct qpc_config *cfg = new_station();
    const struct station *s = values(cfg);
    assert_ptr_equal(qpc_config_schema(cfg), &station);
    assert_string_equal(s->name, "wx");
    assert_string_equal(s->hub, "");
    assert_string_equal(s->mode, "slow");
    assert_int_equal(s->interval, 60);
    assert_false(s->verbose);
    assert_int_equal(s->sensors.count, 2);
    assert_string_equal(s->sensors.items[1], "wind");
    assert_int_equal(s->links.count, 0);
    assert_string_equal(s->site, "");
    assert_int_equal(s->hubs.count, 0);
    for (size_t i = 0; i < station.key_count; i++)
        assert_int_equal(qpc_config_source_of(cfg, station_keys[i].name),
                         QPC_CONFIG_SOURCE_DEFAULT);
    assert_int_equal(qpc_config_source_of(cfg, "nope"), -1);
    qpc_config_free(cfg);
    qpc_config_free(NULL);
}

/* A schema is the program's code: a broken one is refused, never half used. */
static void test_config_new_refuses_a_broken_schema(void **state)
{
    (void)state;
    struct qpc_config_key keys[sizeof(station_keys) / sizeof(station_keys[0])];
    struct qpc_config_schema s;
    struct qpc_config *cfg = (struct qpc_config *)&cfg;

    assert_int_equal(qpc_config_new(&cfg, NULL), QPC_ERR_INVALID);
    assert_null(cfg);
    for (int broken = 0; broken < 13; broken++) {
        memcpy(keys, station_keys, sizeof(keys));
        s = station;
        s.keys = keys;
        switch (broken) {
        case 0: keys[0].name = NULL; break;
        case 1: keys[1].name = keys[0].name; break;                /* a name twice */
        case 2: keys[3].def = "0"; break;                          /* default out of range */
        case 3: keys[2].def = "medium"; break;                     /* default not a choice */
        case 4: keys[2].choices = NULL; break;
        case 5: keys[3].min = 10, keys[3].max = 5; break;
        case 6: keys[8].table = NULL; break;
        case 7: keys[8].offset = sizeof(struct station); break;    /* outside the struct */
        case 8: s.values_size = offsetof(struct station, hubs); break;
        case 9: keys[4].help = NULL; break;
        case 10: s.key_count = 0; break;
        case 11: keys[2].flags |= QPC_CONFIG_AUTO; break;          /* "auto" on an enum */
        case 12: keys[3].flags |= QPC_CONFIG_AUTO, keys[3].min = -5; break; /* -1 a number */
        }
        cfg = (struct qpc_config *)&cfg;
        if (qpc_config_new(&cfg, &s) != QPC_ERR_INVALID)
            fail_msg("broken schema %d accepted", broken);
        assert_null(cfg);
    }
}

/* flag > env > file > default, whatever order the layers arrive in. */
static void test_config_layers_keep_the_strongest_source(void **state)
{
    (void)state;
    const char *envp[] = { "WX_INTERVAL=30", "WX_MODE=fast", "WX_SENSORS=rain", NULL };
    const char *file = "interval = 10\nmode = \"off\"\nname = \"roof\"\n";
    char err[256] = "";
    for (int order = 0; order < 3; order++) {
        struct qpc_config *cfg = new_station();
        for (int step = 0; step < 3; step++) {
            int which = (step + order) % 3;
            if (which == 0)
                assert_int_equal(load(cfg, file, err, sizeof(err)), 0);
            else if (which == 1)
                assert_int_equal(qpc_config_load_env(cfg, envp, err, sizeof(err)), 0);
            else
                assert_int_equal(qpc_config_set(cfg, "--interval", "5", QPC_CONFIG_SOURCE_FLAG,
                                                err, sizeof(err)), 0);
        }
        const struct station *s = values(cfg);
        assert_int_equal(s->interval, 5);
        assert_string_equal(s->mode, "fast");
        assert_string_equal(s->name, "roof");
        assert_int_equal(s->sensors.count, 1);   /* a list is replaced, not merged */
        assert_int_equal(qpc_config_source_of(cfg, "interval"), QPC_CONFIG_SOURCE_FLAG);
        assert_int_equal(qpc_config_source_of(cfg, "mode"), QPC_CONFIG_SOURCE_ENV);
        assert_int_equal(qpc_config_source_of(cfg, "name"), QPC_CONFIG_SOURCE_FILE);
        assert_int_equal(qpc_config_source_of(cfg, "hub"), QPC_CONFIG_SOURCE_DEFAULT);
        /* a weaker value is still checked */
        assert_int_equal(qpc_config_set(cfg, "interval", "0", QPC_CONFIG_SOURCE_ENV, err,
                                        sizeof(err)), QPC_ERR_CONFIG);
        assert_string_equal(err, "environment WX_INTERVAL: 'interval' = 0 is out of range; "
                                 "use 1 to 3600 (SECONDS)");
        qpc_config_free(cfg);
    }
    /* A key without a variable is not read from the environment. */
    struct qpc_config *cfg = new_station();
    const char *verbose_env[] = { "VERBOSE=true", "WX_VERBOSE=true", NULL };
    assert_int_equal(qpc_config_load_env(cfg, verbose_env, err, sizeof(err)), 0);
    assert_false(values(cfg)->verbose);
    assert_int_equal(qpc_config_set(cfg, "verbose", "yes", QPC_CONFIG_SOURCE_FLAG, err,
                                    sizeof(err)), 0);
    assert_true(values(cfg)->verbose);
    qpc_config_free(cfg);
}

/* Messages about types, choices and tables are worded from the schema's rows. */
static void test_config_messages_come_from_the_schema(void **state)
{
    (void)state;
    expect_file_error("mode = 3\n", "wx.toml:1: 'mode' expects a string (\"fast\", \"slow\" or "
                      "\"off\"), got an integer");
    expect_file_error("mode = \"medium\"\n", "wx.toml:1: 'mode' = \"medium\" is not allowed; use "
                      "one of fast, slow or off");
    expect_file_error("sensors = 1\n", "wx.toml:1: 'sensors' expects an array of strings like "
                      "[\"a\", \"b\"], got an integer");
    expect_file_error("links = true\n", "wx.toml:1: 'links' expects an array of strings like "
                      "[\"eth0\", \"wlan0\"], got a boolean");
    expect_file_error("links = [\"a b\"]\n", "wx.toml:1: 'links' item \"a b\": an interface name "
                      "may not contain '/' or spaces");
    expect_file_error("site = \"a..b\"\n", "wx.toml:1: 'site' = \"a..b\" is not a domain name: it "
                      "has an empty label (two dots, or a dot at an end)");
    expect_file_error("hub = \"h:0\"\n", "wx.toml:1: 'hub' = \"h:0\" is not a usable address: "
                      "port 0 cannot be dialled");
    expect_file_error("interval = 4000\n", "wx.toml:1: 'interval' = 4000 is out of range; use 1 "
                      "to 3600 (SECONDS)");
    expect_file_error("hubs = 1\n", "wx.toml:1: 'hubs' is a table: write a [hubs] header, then "
                      "one site = \"host:port\" line per hub");
    expect_file_error("[hubs]\nnorth = 1\n", "wx.toml:2: hub 'north' expects an address string "
                      "like \"192.0.2.1:9000\", got an integer");
    expect_file_error("[hubs]\nnorth = \"h:1\"\nNORTH = \"h:2\"\n", "wx.toml:3: duplicate hub "
                      "'NORTH'");
    expect_file_error("[hubs]\na = \"h:1\"\nb = \"h:1\"\nc = \"h:1\"\nd = \"h:1\"\n",
                      "wx.toml:5: more than 3 hubs");
    expect_file_error("[hubs]\n\"a b\" = \"h:1\"\n", "wx.toml:2: hub 'a b' is not a domain name: "
                      "it may hold only letters, digits, '-', '_' and '.'");
    expect_file_error("[hubs]\nn = \"h\"\n", "wx.toml:2: hub 'n' has address \"h\": the port is "
                      "missing (write host:port)");
    expect_file_error("[hubs]\ninterval = \"h:1\"\n", "wx.toml:2: 'interval' is a top-level key "
                      "but appears inside [hubs]; move it above the table header");

    struct qpc_config *cfg = new_station();
    char err[256] = "";
    const char *bad_form[] = { "WX_HUBS=north", NULL };
    assert_int_equal(qpc_config_load_env(cfg, bad_form, err, sizeof(err)), QPC_ERR_CONFIG);
    assert_string_equal(err, "environment WX_HUBS: 'hubs' item \"north\" needs the form "
                             "site=host:port");
    const char *twice[] = { "WX_HUBS=a=h:1,A=h:2", NULL };
    assert_int_equal(qpc_config_load_env(cfg, twice, err, sizeof(err)), QPC_ERR_CONFIG);
    assert_string_equal(err, "environment WX_HUBS: hub 'A' is given twice");
    assert_int_equal(qpc_config_set(cfg, "hubs", "a=h:1,b=h:1,c=h:1,d=h:1",
                                    QPC_CONFIG_SOURCE_FLAG, err, sizeof(err)), QPC_ERR_CONFIG);
    assert_string_equal(err, "command line: more than 3 hubs");
    qpc_config_free(cfg);
}

static void test_config_unknown_names_get_suggestions(void **state)
{
    (void)state;
    char err[256] = "";
    expect_file_error("intervall = 5\n", "wx.toml:1: unknown key 'intervall'; did you mean "
                      "'interval'?");
    expect_file_error("[hubz]\n", "wx.toml:1: unknown table [hubz]; did you mean [hubs]?");
    expect_file_error("[mode]\n", "wx.toml:1: 'mode' is a key, not a table: write mode = ... "
                      "above the first [table]");
    expect_file_error("zzzzzzzzzzzz = 1\n", "wx.toml:1: unknown key 'zzzzzzzzzzzz'; the closest "
                      "known one is 'name'; docs/config.md lists them all");
    expect_file_error("interval = 1\n\ninterval = 2\n", "wx.toml:3: duplicate key 'interval' "
                      "(first set on line 1)");
    expect_file_error("[hubs]\n[hubs]\n", "wx.toml:2: table [hubs] appears twice (first on "
                      "line 1)");
    struct qpc_config *cfg = new_station();
    assert_int_equal(qpc_config_set(cfg, "--verbse", "1", QPC_CONFIG_SOURCE_FLAG, err,
                                    sizeof(err)), QPC_ERR_CONFIG);
    assert_string_equal(err, "command line: unknown option 'verbse'; did you mean '--verbose'?");
    /* the nearest name may be a table */
    assert_int_equal(qpc_config_set(cfg, "hubss", "a=h:1", QPC_CONFIG_SOURCE_ENV, err,
                                    sizeof(err)), QPC_ERR_CONFIG);
    assert_string_equal(err, "environment hubss: unknown key 'hubss'; did you mean 'hubs'?");
    qpc_config_free(cfg);

    /* A schema with no tables, and one with nothing but a table, say so. */
    static const struct qpc_config_schema no_tables = {
        .program = "p", .keys = station_keys, .key_count = 8,
        .values_size = sizeof(struct station),
    };
    static const struct qpc_config_schema only_table = {
        .program = "p", .keys = station_keys + 8, .key_count = 1,
        .values_size = sizeof(struct station),
    };
    assert_int_equal(qpc_config_new(&cfg, &no_tables), 0);
    assert_int_equal(load(cfg, "[hubs]\n", err, sizeof(err)), QPC_ERR_CONFIG);
    assert_string_equal(err, "wx.toml:1: unknown table [hubs]; this file has no tables");
    qpc_config_free(cfg);
    assert_int_equal(qpc_config_new(&cfg, &only_table), 0);
    assert_int_equal(load(cfg, "name = \"x\"\n", err, sizeof(err)), QPC_ERR_CONFIG);
    assert_string_equal(err, "wx.toml:1: unknown key 'name'; this file has only tables");
    assert_int_equal(qpc_config_set(cfg, "--hub", "x", QPC_CONFIG_SOURCE_FLAG, err, sizeof(err)),
                     QPC_ERR_CONFIG);
    assert_string_equal(err, "command line: unknown option 'hub'; did you mean '--hubs'?");
    qpc_config_free(cfg);
}

static void test_config_tables_map_names_to_addresses(void **state)
{
    (void)state;
    char err[256] = "";
    struct qpc_config *cfg = new_station();
    assert_int_equal(load(cfg, "[hubs]\n\"North.example\" = \"[::1]:9000\"\nsouth = \"s:1\"\n",
                          err, sizeof(err)), 0);
    const struct station *s = values(cfg);
    assert_int_equal(s->hubs.count, 2);
    assert_string_equal(s->hubs.items[0].name, "North.example");
    assert_string_equal(qpc_config_table_get(&s->hubs, "north.EXAMPLE"), "[::1]:9000");
    assert_string_equal(qpc_config_table_get(&s->hubs, "south"), "s:1");
    assert_null(qpc_config_table_get(&s->hubs, "west"));
    assert_null(qpc_config_table_get(NULL, "west"));
    assert_null(qpc_config_table_get(&s->hubs, NULL));
    /* from text: blanks trimmed, empty items skipped; a stronger source replaces it all */
    assert_int_equal(qpc_config_set(cfg, "hubs", " west = w:2 ,,", QPC_CONFIG_SOURCE_ENV, err,
                                    sizeof(err)), 0);
    assert_int_equal(s->hubs.count, 1);
    assert_string_equal(qpc_config_table_get(&s->hubs, "west"), "w:2");
    qpc_config_free(cfg);
}

/* A value computed at start keeps its origin and still passes its key's checks. */
static void test_config_set_computed_keeps_the_source(void **state)
{
    (void)state;
    char err[256] = "";
    struct qpc_config *cfg = new_station();
    assert_int_equal(qpc_config_set_computed(cfg, "site", "roof.example", err, sizeof(err)), 0);
    assert_string_equal(values(cfg)->site, "roof.example");
    assert_int_equal(qpc_config_source_of(cfg, "site"), QPC_CONFIG_SOURCE_DEFAULT);
    assert_int_equal(load(cfg, "name = \"\"\n", err, sizeof(err)), 0);
    /* taken as it is: a path may hold bytes the text syntax refuses */
    assert_int_equal(qpc_config_set_computed(cfg, "name", "/home/jos\xe9\n", err, sizeof(err)), 0);
    assert_string_equal(values(cfg)->name, "/home/jos\xe9\n");
    assert_int_equal(qpc_config_source_of(cfg, "name"), QPC_CONFIG_SOURCE_FILE);
    char *out = print_to_string(cfg);
    assert_non_null(strstr(out, "name = \"/home/jos\xe9\\n\"  # file wx.toml:1\n"));
    free(out);
    /* but checked against the key */
    assert_int_equal(qpc_config_set_computed(cfg, "site", "a..b", err, sizeof(err)),
                     QPC_ERR_CONFIG);
    assert_string_equal(err, "'site' = \"a..b\" is not a domain name: it has an empty label "
                             "(two dots, or a dot at an end)");
    assert_string_equal(values(cfg)->site, "roof.example");
    assert_int_equal(qpc_config_set_computed(cfg, "mode", "off", err, sizeof(err)), 0);
    assert_int_equal(qpc_config_set_computed(cfg, "mode", "on", err, sizeof(err)), QPC_ERR_CONFIG);
    assert_int_equal(qpc_config_set_computed(cfg, "interval", "5", err, sizeof(err)),
                     QPC_ERR_INVALID);
    assert_int_equal(qpc_config_set_computed(cfg, "nope", "5", err, sizeof(err)), QPC_ERR_INVALID);
    qpc_config_free(cfg);
}

static void test_config_help_is_generated_from_the_rows(void **state)
{
    (void)state;
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    assert_non_null(f);
    assert_int_equal(qpc_config_print_help(&station, f), 0);
    fclose(f);
    assert_string_equal(out,
        "  --name=TEXT                      what the station is called [env WX_NAME, default \"wx\"]\n"
        "  --hub=HOST:PORT                  hub to report to [env WX_HUB, default \"\"]\n"
        "  --mode=MODE                      how often to sample [env WX_MODE, default \"slow\"]\n"
        "  --interval=SECONDS               seconds between reports [env WX_INTERVAL, default 60]\n"
        "  --verbose=BOOL                   say more [default false]\n"
        "  --sensors=A,B                    sensors to read [env WX_SENSORS, default temp,wind]\n"
        "  --links=IF,...                   interfaces to use [env WX_LINKS, default none]\n"
        "  --site=DOMAIN                    this station's site [env WX_SITE, default \"\"]\n"
        "  --hubs=SITE=HOST:PORT,...        hubs by site [env WX_HUBS, default none]\n");
    free(out);
    assert_int_equal(qpc_config_print_help(NULL, stdout), QPC_ERR_INVALID);
}

/* The printout names the program and every origin, and reads back to the same values. */
static void test_config_print_round_trips_with_origins(void **state)
{
    (void)state;
    char err[256] = "";
    const char *envp[] = { "WX_MODE=fast", NULL };
    struct qpc_config *cfg = new_station(), *again = new_station();
    assert_int_equal(load(cfg, "# roof\nsensors = [\"a\\\"b\", \"c\"]\n[hubs]\nn = \"h:1\"\n",
                          err, sizeof(err)), 0);
    assert_int_equal(qpc_config_load_env(cfg, envp, err, sizeof(err)), 0);
    assert_int_equal(qpc_config_set(cfg, "--verbose", "true", QPC_CONFIG_SOURCE_FLAG, err,
                                    sizeof(err)), 0);
    char *out = print_to_string(cfg);
    assert_string_equal(out,
        "# effective configuration of wx-station (precedence: flag > env > file > default)\n"
        "name = \"wx\"  # default\n"
        "hub = \"\"  # default\n"
        "mode = \"fast\"  # env WX_MODE\n"
        "interval = 60  # default\n"
        "verbose = true  # flag --verbose\n"
        "sensors = [\"a\\\"b\", \"c\"]  # file wx.toml:2\n"
        "links = []  # default\n"
        "site = \"\"  # default\n"
        "\n"
        "[hubs]  # file wx.toml:3\n"
        "\"n\" = \"h:1\"\n");
    assert_int_equal(load(again, out, err, sizeof(err)), 0);
    assert_true(values(again)->verbose);
    assert_string_equal(values(again)->sensors.items[0], "a\"b");
    assert_string_equal(qpc_config_table_get(&values(again)->hubs, "n"), "h:1");
    free(out);
    qpc_config_free(again);
    qpc_config_free(cfg);
}

/*
 * A build without the radio: its keys keep their rows (defaults fill the struct) but a
 * value from any layer is refused with the schema's reason, and neither --help, the
 * printout nor a did-you-mean names them.
 */
struct radio_less {
    char *name;
    char *radio;
    bool beacon;
};

static const struct qpc_config_key radio_less_keys[] = {
    { .name = "name", .flag = "--name", .type = QPC_CONFIG_STRING, .env = "WX_NAME",
      .def = "wx", .offset = offsetof(struct radio_less, name), .metavar = "TEXT",
      .help = "what the station is called" },
    { .name = "radio", .flag = "--radio", .type = QPC_CONFIG_ADDR, .env = "WX_RADIO",
      .def = "0.0.0.0:0", .offset = offsetof(struct radio_less, radio),
      .flags = QPC_CONFIG_PORT0 | QPC_CONFIG_NOT_BUILT, .metavar = "HOST:PORT",
      .help = "radio link address" },
    { .name = "beacon", .flag = "--beacon", .type = QPC_CONFIG_BOOL, .env = "WX_BEACON",
      .def = "true", .offset = offsetof(struct radio_less, beacon),
      .flags = QPC_CONFIG_NOT_BUILT, .metavar = "BOOL", .help = "send beacons" },
};

static void test_config_keys_not_built_are_refused_saying_why(void **state)
{
    (void)state;
    struct qpc_config_schema schema = {
        .program = "wx-mini", .keys = radio_less_keys,
        .key_count = sizeof(radio_less_keys) / sizeof(radio_less_keys[0]),
        .values_size = sizeof(struct radio_less),
        .not_built = "this build has no radio (-DWX_RADIO=OFF)",
    };
    static const char *const env[] = { "WX_BEACON=false", NULL };
    struct qpc_config *cfg = NULL;
    const struct radio_less *v;
    char err[512] = "", *out = NULL;
    size_t len = 0;
    FILE *f;

    assert_int_equal(qpc_config_new(&cfg, &schema), 0);
    v = qpc_config_values(cfg);
    assert_string_equal(v->radio, "0.0.0.0:0");   /* the default is there for the code */
    assert_true(v->beacon);
    assert_int_equal(qpc_config_set(cfg, "--radio", "10.0.0.1:1", QPC_CONFIG_SOURCE_FLAG, err,
                                    sizeof(err)), QPC_ERR_CONFIG);
    assert_string_equal(err, "command line: --radio: this build has no radio (-DWX_RADIO=OFF)");
    assert_int_equal(qpc_config_load_env(cfg, env, err, sizeof(err)), QPC_ERR_CONFIG);
    assert_string_equal(err, "environment WX_BEACON: beacon: this build has no radio (-DWX_RADIO=OFF)");
    assert_int_equal(qpc_config_load_buffer(cfg, "wx.toml", "name = \"a\"\nradio = 5\n", 20, err,
                                            sizeof(err)), QPC_ERR_CONFIG);
    assert_string_equal(err, "wx.toml:2: radio: this build has no radio (-DWX_RADIO=OFF)");
    assert_string_equal(v->radio, "0.0.0.0:0");
    assert_true(v->beacon);
    /* A typo near a key that is not built is not steered to it. */
    assert_int_equal(qpc_config_set(cfg, "--radi", "x", QPC_CONFIG_SOURCE_FLAG, err, sizeof(err)),
                     QPC_ERR_CONFIG);
    assert_null(strstr(err, "radio"));
    f = open_memstream(&out, &len);
    assert_non_null(f);
    assert_int_equal(qpc_config_print_help(&schema, f), 0);
    assert_int_equal(qpc_config_print(cfg, f), 0);
    fclose(f);
    assert_null(strstr(out, "radio"));
    assert_null(strstr(out, "beacon"));
    assert_non_null(strstr(out, "--name=TEXT"));
    free(out);
    qpc_config_free(cfg);
    /* The reason is required once a key is not built. */
    schema.not_built = NULL;
    assert_int_equal(qpc_config_new(&cfg, &schema), QPC_ERR_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_defaults_fill_the_programs_struct),
        cmocka_unit_test(test_config_new_refuses_a_broken_schema),
        cmocka_unit_test(test_config_layers_keep_the_strongest_source),
        cmocka_unit_test(test_config_messages_come_from_the_schema),
        cmocka_unit_test(test_config_unknown_names_get_suggestions),
        cmocka_unit_test(test_config_tables_map_names_to_addresses),
        cmocka_unit_test(test_config_set_computed_keeps_the_source),
        cmocka_unit_test(test_config_help_is_generated_from_the_rows),
        cmocka_unit_test(test_config_print_round_trips_with_origins),
        cmocka_unit_test(test_config_keys_not_built_are_refused_saying_why),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
