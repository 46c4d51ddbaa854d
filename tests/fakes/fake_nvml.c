/*
 * A fake libnvidia-ml.so.1 for GPM's tests and benchmarks.
 *
 * It implements, against the real nvml.h, the NVML entry points that the nvidia-ml-py bindings
 * call for GPM's GPU source. What it reports comes from a scenario file named by the environment
 * variable FAKE_NVML_SCENARIO, re-read whenever the file changes (inode, size or mtime), so a
 * test can change readings, lose a GPU or fail a field while the library is in use. The format
 * is documented in tests/fakes/fake_nvml.py, which also writes it.
 *
 * Any entry point can be left out at compile time with -DOMIT_<symbol>, so that the bindings
 * see NVML_ERROR_FUNCTION_NOT_FOUND as they would with an older driver.
 *
 * fakeNvmlCallCount(name) returns how often an entry point was called, so that tests can check
 * the calling protocol (e.g. the two-call INSUFFICIENT_SIZE dance) without spying on Python.
 */
#define NVML_NO_UNVERSIONED_FUNC_DEFS
#include <nvml.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define MAX_GPUS 64
#define MAX_PROCS 64
#define MAX_XIDS 64
#define MAX_MIG 8
#define MAX_LATENCIES 64
#define NAME_LEN 96

/* Per-GPU readings that can be failed individually; the scenario names them in lower case. */
enum field {
    F_NAME, F_UUID, F_UTILIZATION, F_MEMORY, F_TEMPERATURE, F_POWER, F_POWER_LIMIT, F_FAN,
    F_CLOCK_GRAPHICS, F_CLOCK_SM, F_CLOCK_MEMORY, F_PSTATE, F_ENCODER, F_DECODER, F_PCIE_TX,
    F_PCIE_RX, F_THROTTLE, F_ENERGY, F_ECC_MODE, F_ECC_CORRECTED, F_ECC_UNCORRECTED,
    F_COMPUTE_PROCESSES, F_GRAPHICS_PROCESSES, F_PROCESS_UTILIZATION, F_MEMORY_TEMPERATURE,
    F_REMAPPED_ROWS, F_RETIRED_PAGES, F_ECC_AGGREGATE, F_NVLINK, F_PCIE_REPLAY, F_EVENTS, F_MIG,
    F_MIG_DEVICES, F_MIG_PROCESSES, F_COUNT
};

static const char *const field_names[F_COUNT] = {
    "name", "uuid", "utilization", "memory", "temperature", "power", "power_limit", "fan",
    "clock_graphics", "clock_sm", "clock_memory", "pstate", "encoder", "decoder", "pcie_tx",
    "pcie_rx", "throttle", "energy", "ecc_mode", "ecc_corrected", "ecc_uncorrected",
    "compute_processes", "graphics_processes", "process_utilization", "memory_temperature",
    "remapped_rows", "retired_pages", "ecc_aggregate", "nvlink", "pcie_replay", "events", "mig",
    "mig_devices", "mig_processes",
};

/* Numeric values, in the same order as the fields above where they have one. */
enum value {
    V_UTIL_GPU, V_UTIL_MEMORY, V_MEMORY_TOTAL, V_MEMORY_USED, V_MEMORY_RESERVED, V_TEMPERATURE,
    V_POWER_MW, V_POWER_LIMIT_MW, V_FAN, V_CLOCK_GRAPHICS, V_CLOCK_SM, V_CLOCK_MEMORY, V_PSTATE,
    V_ENCODER, V_DECODER, V_PCIE_TX_KB, V_PCIE_RX_KB, V_THROTTLE, V_ENERGY_MJ, V_ECC_ENABLED,
    V_ECC_CORRECTED, V_ECC_UNCORRECTED, V_MEMORY_TEMPERATURE, V_REMAP_CORRECTABLE,
    V_REMAP_UNCORRECTABLE, V_REMAP_PENDING, V_REMAP_FAILURE, V_RETIRED_SBE, V_RETIRED_DBE,
    V_RETIRED_PENDING, V_ECC_CORRECTED_AGGREGATE, V_ECC_UNCORRECTED_AGGREGATE, V_NVLINK_LINKS,
    V_NVLINK_ACTIVE, V_NVLINK_CRC, V_NVLINK_REPLAY, V_NVLINK_RECOVERY, V_PCIE_REPLAY, V_MIG_MODE,
    V_ENERGY_RATE, V_COUNT
};

static const char *const value_names[V_COUNT] = {
    "util_gpu", "util_memory", "memory_total", "memory_used", "memory_reserved", "temperature_c",
    "power_mw", "power_limit_mw", "fan_percent", "clock_graphics_mhz", "clock_sm_mhz",
    "clock_memory_mhz", "pstate", "encoder_util", "decoder_util", "pcie_tx_kbps", "pcie_rx_kbps",
    "throttle_reasons", "energy_mj", "ecc_enabled", "ecc_corrected", "ecc_uncorrected",
    "memory_temperature_c", "remap_correctable", "remap_uncorrectable", "remap_pending",
    "remap_failure", "retired_sbe", "retired_dbe", "retired_pending", "ecc_corrected_aggregate",
    "ecc_uncorrected_aggregate", "nvlink_links", "nvlink_active", "nvlink_crc", "nvlink_replay",
    "nvlink_recovery", "pcie_replay", "mig_mode", "energy_rate_mw",
};

/* The field whose failure makes a value unreadable. */
static const enum field value_field[V_COUNT] = {
    F_UTILIZATION, F_UTILIZATION, F_MEMORY, F_MEMORY, F_MEMORY, F_TEMPERATURE, F_POWER,
    F_POWER_LIMIT, F_FAN, F_CLOCK_GRAPHICS, F_CLOCK_SM, F_CLOCK_MEMORY, F_PSTATE, F_ENCODER,
    F_DECODER, F_PCIE_TX, F_PCIE_RX, F_THROTTLE, F_ENERGY, F_ECC_MODE, F_ECC_CORRECTED,
    F_ECC_UNCORRECTED, F_MEMORY_TEMPERATURE, F_REMAPPED_ROWS, F_REMAPPED_ROWS, F_REMAPPED_ROWS,
    F_REMAPPED_ROWS, F_RETIRED_PAGES, F_RETIRED_PAGES, F_RETIRED_PAGES, F_ECC_AGGREGATE,
    F_ECC_AGGREGATE, F_NVLINK, F_NVLINK, F_NVLINK, F_NVLINK, F_NVLINK, F_PCIE_REPLAY, F_MIG,
    F_ENERGY,
};

struct proc {
    unsigned int pid;
    unsigned long long used; /* NVML_VALUE_NOT_AVAILABLE when unknown */
};

struct util_sample {
    unsigned int pid;
    unsigned int sm;
};

/* A MIG device: a GPU instance with a compute instance, and the processes on it. */
struct mig_dev {
    int present;
    char name[NAME_LEN];
    char uuid[NAME_LEN];
    unsigned int gi, ci;
    unsigned long long memory_total, memory_used;
    struct proc compute[MAX_PROCS];
    unsigned int n_compute;
};

struct gpu {
    char name[NAME_LEN];
    char uuid[NAME_LEN];
    nvmlReturn_t state; /* NVML_SUCCESS, or the error every call on this GPU returns */
    int has[V_COUNT];
    unsigned long long val[V_COUNT];
    nvmlReturn_t fail[F_COUNT];
    struct proc compute[MAX_PROCS];
    unsigned int n_compute;
    struct proc graphics[MAX_PROCS];
    unsigned int n_graphics;
    struct util_sample util[MAX_PROCS];
    unsigned int n_util;
    unsigned long long xids[MAX_XIDS]; /* Xid events, in the order they happen */
    unsigned int n_xids;
    struct mig_dev migs[MAX_MIG]; /* used while mig_mode is 1 */
};

/* The device handle NVML hands out is a pointer to one of these: a whole GPU (mig 0) or its
 * MIG device mig - 1. */
struct nvmlDevice_st {
    unsigned int index;
    unsigned int mig;
};

static struct scenario {
    nvmlReturn_t init_result;
    char driver[NAME_LEN]; /* "" : nvmlSystemGetDriverVersion is NOT_SUPPORTED */
    unsigned long long cuda; /* 0 : nvmlSystemGetCudaDriverVersion_v2 is NOT_SUPPORTED */
    unsigned int count;
    struct gpu gpus[MAX_GPUS];
    /* How long an entry point takes, in microseconds: for one GPU, or all (gpu -1). */
    struct latency {
        char symbol[NAME_LEN];
        int gpu;
        unsigned long long us;
    } latencies[MAX_LATENCIES];
    unsigned int n_latencies;
} current;

static struct nvmlDevice_st devices[MAX_GPUS];
static struct nvmlDevice_st mig_handles[MAX_GPUS][MAX_MIG];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int initialised;
static unsigned long long util_clock; /* timestamps handed out with process samples */
static struct stat seen;
static int loaded;

/* ---- call counting ------------------------------------------------------------------------ */

#define MAX_COUNTED 64
static struct {
    const char *name;
    unsigned long calls;
} counted[MAX_COUNTED];

static void count_call(const char *name) {
    for (int i = 0; i < MAX_COUNTED; i++) {
        if (counted[i].name == NULL || strcmp(counted[i].name, name) == 0) {
            counted[i].name = name;
            counted[i].calls++;
            return;
        }
    }
}

unsigned long fakeNvmlCallCount(const char *name) {
    unsigned long calls = 0;
    pthread_mutex_lock(&lock);
    for (int i = 0; i < MAX_COUNTED && counted[i].name; i++) {
        if (strcmp(counted[i].name, name) == 0) calls = counted[i].calls;
    }
    pthread_mutex_unlock(&lock);
    return calls;
}

/* ---- scenario parsing --------------------------------------------------------------------- */

static const struct {
    const char *name;
    nvmlReturn_t code;
} error_names[] = {
    {"SUCCESS", NVML_SUCCESS},
    {"OK", NVML_SUCCESS},
    {"UNINITIALIZED", NVML_ERROR_UNINITIALIZED},
    {"INVALID_ARGUMENT", NVML_ERROR_INVALID_ARGUMENT},
    {"NOT_SUPPORTED", NVML_ERROR_NOT_SUPPORTED},
    {"NO_PERMISSION", NVML_ERROR_NO_PERMISSION},
    {"NOT_FOUND", NVML_ERROR_NOT_FOUND},
    {"INSUFFICIENT_SIZE", NVML_ERROR_INSUFFICIENT_SIZE},
    {"DRIVER_NOT_LOADED", NVML_ERROR_DRIVER_NOT_LOADED},
    {"TIMEOUT", NVML_ERROR_TIMEOUT},
    {"LIBRARY_NOT_FOUND", NVML_ERROR_LIBRARY_NOT_FOUND},
    {"FUNCTION_NOT_FOUND", NVML_ERROR_FUNCTION_NOT_FOUND},
    {"GPU_IS_LOST", NVML_ERROR_GPU_IS_LOST},
    {"RESET_REQUIRED", NVML_ERROR_RESET_REQUIRED},
    {"LIB_RM_VERSION_MISMATCH", NVML_ERROR_LIB_RM_VERSION_MISMATCH},
    {"ARGUMENT_VERSION_MISMATCH", NVML_ERROR_ARGUMENT_VERSION_MISMATCH},
    {"UNKNOWN", NVML_ERROR_UNKNOWN},
};

static int parse_error(const char *text, nvmlReturn_t *out) {
    for (size_t i = 0; i < sizeof error_names / sizeof error_names[0]; i++) {
        if (strcmp(text, error_names[i].name) == 0) {
            *out = error_names[i].code;
            return 0;
        }
    }
    return -1;
}

static int lookup(const char *const *names, int n, const char *text) {
    for (int i = 0; i < n; i++) {
        if (strcmp(names[i], text) == 0) return i;
    }
    return -1;
}

static int parse_u64(const char *text, unsigned long long *out) {
    char *end;
    if (!text || !*text) return -1;
    *out = strtoull(text, &end, 0);
    return *end ? -1 : 0;
}

/* "<pid> <bytes|na>" appended to a process list; returns 0 or -1. */
static int parse_proc(char *arg, struct proc *list, unsigned int *n) {
    char *pid = arg ? strtok(arg, " \t") : NULL;
    char *used = strtok(NULL, " \t");
    unsigned long long p, u = NVML_VALUE_NOT_AVAILABLE;
    if (*n >= MAX_PROCS || parse_u64(pid, &p) || !used) return -1;
    if (strcmp(used, "na") != 0 && parse_u64(used, &u)) return -1;
    list[*n].pid = (unsigned int)p;
    list[(*n)++].used = u;
    return 0;
}

/* The rest of a "gpu <index> mig <k> <key> <value>" line. */
static int parse_mig_line(struct gpu *g, char *arg) {
    unsigned long long k, x;
    char *index = arg ? strtok(arg, " \t") : NULL;
    if (parse_u64(index, &k) || k >= MAX_MIG) return -1;
    struct mig_dev *m = &g->migs[k];
    m->present = 1;
    char *key = strtok(NULL, " \t");
    if (!key) return 0;
    char *value = strtok(NULL, "");
    while (value && (*value == ' ' || *value == '\t')) value++;
    if (!value) return -1;
    if (strcmp(key, "name") == 0 || strcmp(key, "uuid") == 0) {
        snprintf(key[0] == 'n' ? m->name : m->uuid, NAME_LEN, "%s", value);
        return 0;
    }
    if (strcmp(key, "compute") == 0) return parse_proc(value, m->compute, &m->n_compute);
    if (parse_u64(value, &x)) return -1;
    if (strcmp(key, "gi") == 0) m->gi = (unsigned int)x;
    else if (strcmp(key, "ci") == 0) m->ci = (unsigned int)x;
    else if (strcmp(key, "memory_total") == 0) m->memory_total = x;
    else if (strcmp(key, "memory_used") == 0) m->memory_used = x;
    else return -1;
    return 0;
}

/* "<symbol> <microseconds>" of a latency line, for one GPU or all (gpu -1). */
static int parse_latency(struct scenario *s, int gpu, char *arg) {
    char *symbol = arg ? strtok(arg, " \t") : NULL;
    unsigned long long us;
    if (!symbol || s->n_latencies >= MAX_LATENCIES || parse_u64(strtok(NULL, " \t"), &us))
        return -1;
    struct latency *l = &s->latencies[s->n_latencies++];
    snprintf(l->symbol, NAME_LEN, "%s", symbol);
    l->gpu = gpu;
    l->us = us;
    return 0;
}

/* One "gpu <index> ..." line; returns 0 or -1 for a line it cannot use. */
static int parse_gpu_line(struct scenario *s, char *rest) {
    char *tok = strtok(rest, " \t");
    unsigned long long index;
    if (parse_u64(tok, &index) || index >= MAX_GPUS) return -1;
    struct gpu *g = &s->gpus[index];
    if (index + 1 > s->count) s->count = (unsigned int)index + 1;
    char *key = strtok(NULL, " \t");
    if (!key) return 0; /* "gpu N" alone declares the GPU */
    char *arg = strtok(NULL, "");
    while (arg && (*arg == ' ' || *arg == '\t')) arg++;
    if (strcmp(key, "name") == 0 || strcmp(key, "uuid") == 0) {
        if (!arg) return -1;
        snprintf(key[0] == 'n' ? g->name : g->uuid, NAME_LEN, "%s", arg);
        return 0;
    }
    if (strcmp(key, "state") == 0) return arg ? parse_error(arg, &g->state) : -1;
    if (strcmp(key, "fail") == 0) {
        char *field = arg ? strtok(arg, " \t") : NULL;
        char *code = strtok(NULL, " \t");
        int f = field ? lookup(field_names, F_COUNT, field) : -1;
        return (f < 0 || !code) ? -1 : parse_error(code, &g->fail[f]);
    }
    if (strcmp(key, "compute") == 0 || strcmp(key, "graphics") == 0) {
        if (key[0] == 'c') return parse_proc(arg, g->compute, &g->n_compute);
        return parse_proc(arg, g->graphics, &g->n_graphics);
    }
    if (strcmp(key, "mig") == 0) return parse_mig_line(g, arg);
    if (strcmp(key, "latency") == 0) return parse_latency(s, (int)index, arg);
    if (strcmp(key, "xid") == 0) {
        if (g->n_xids >= MAX_XIDS || parse_u64(arg, &g->xids[g->n_xids])) return -1;
        g->n_xids++;
        return 0;
    }
    if (strcmp(key, "sm_util") == 0) {
        char *pid = arg ? strtok(arg, " \t") : NULL;
        unsigned long long p, sm;
        if (g->n_util >= MAX_PROCS || parse_u64(pid, &p) || parse_u64(strtok(NULL, " \t"), &sm))
            return -1;
        g->util[g->n_util].pid = (unsigned int)p;
        g->util[g->n_util++].sm = (unsigned int)sm;
        return 0;
    }
    int v = lookup(value_names, V_COUNT, key);
    if (v < 0 || parse_u64(arg, &g->val[v])) return -1;
    g->has[v] = 1;
    return 0;
}

/* Reads the scenario file into *s; returns 0, or -1 after saying on stderr what is wrong. */
static int parse_scenario(const char *path, struct scenario *s) {
    memset(s, 0, sizeof *s);
    for (int i = 0; i < MAX_GPUS; i++) {
        snprintf(s->gpus[i].name, NAME_LEN, "Fake GPU %d", i);
        snprintf(s->gpus[i].uuid, NAME_LEN, "GPU-fake-%04d", i);
        for (int k = 0; k < MAX_MIG; k++) {
            snprintf(s->gpus[i].migs[k].name, NAME_LEN, "Fake GPU %d MIG 1g.10gb", i);
            snprintf(s->gpus[i].migs[k].uuid, NAME_LEN, "MIG-fake-%04d-%d", i, k);
        }
    }
    FILE *fh = fopen(path, "r");
    if (!fh) {
        fprintf(stderr, "fake_nvml: cannot open scenario %s\n", path);
        return -1;
    }
    char line[512];
    int lineno = 0, status = 0;
    while (fgets(line, sizeof line, fh)) {
        lineno++;
        line[strcspn(line, "\r\n")] = 0;
        char *p = line;
        while (*p == ' ' || *p == '\t') p++;
        if (!*p || *p == '#') continue;
        char *word = strtok(p, " \t");
        char *rest = strtok(NULL, "");
        int bad;
        if (strcmp(word, "gpu") == 0) {
            bad = rest ? parse_gpu_line(s, rest) : -1;
        } else if (strcmp(word, "init") == 0) {
            bad = rest ? parse_error(strtok(rest, " \t"), &s->init_result) : -1;
        } else if (strcmp(word, "latency") == 0) {
            bad = parse_latency(s, -1, rest);
        } else if (strcmp(word, "driver") == 0 && rest) {
            snprintf(s->driver, NAME_LEN, "%s", strtok(rest, " \t"));
            bad = 0;
        } else if (strcmp(word, "cuda") == 0) {
            bad = parse_u64(rest ? strtok(rest, " \t") : NULL, &s->cuda);
        } else {
            bad = -1;
        }
        if (bad) {
            fprintf(stderr, "fake_nvml: %s:%d: cannot use this line\n", path, lineno);
            status = -1;
        }
    }
    fclose(fh);
    return status;
}

/* Re-reads the scenario when its file changed; keeps the old one if the new one is bad.
 * Called with the lock held. Returns -1 only when no scenario could ever be read. */
static int refresh(void) {
    const char *path = getenv("FAKE_NVML_SCENARIO");
    if (!path) {
        if (!loaded) memset(&current, 0, sizeof current);
        loaded = 1;
        return 0;
    }
    struct stat st;
    if (stat(path, &st) != 0) return loaded ? 0 : -1;
    if (loaded && st.st_ino == seen.st_ino && st.st_size == seen.st_size &&
        st.st_mtim.tv_sec == seen.st_mtim.tv_sec && st.st_mtim.tv_nsec == seen.st_mtim.tv_nsec)
        return 0;
    static struct scenario next;
    if (parse_scenario(path, &next) != 0) return loaded ? 0 : -1;
    current = next;
    seen = st;
    loaded = 1;
    return 0;
}

/* ---- entry points ------------------------------------------------------------------------- */

/* Common prologue for calls on a device: count, lock, refresh, validate. */
#define DEVICE_CALL(fn, dev) ANY_DEVICE_CALL(fn, dev, 0)
/* For the calls that also answer on a MIG device handle; m is its MIG device, or NULL. */
#define MIG_DEVICE_CALL(fn, dev)                                                    \
    ANY_DEVICE_CALL(fn, dev, 1);                                                    \
    struct mig_dev *m = (dev)->mig ? &g->migs[(dev)->mig - 1] : NULL
#define ANY_DEVICE_CALL(fn, dev, mig_ok)                                            \
    pthread_mutex_lock(&lock);                                                      \
    count_call(fn);                                                                 \
    refresh();                                                                      \
    take_time(fn, dev);                                                             \
    nvmlReturn_t ret_ = check_device(dev, mig_ok);                                  \
    if (ret_ != NVML_SUCCESS) {                                                     \
        pthread_mutex_unlock(&lock);                                                \
        return ret_;                                                                \
    }                                                                               \
    struct gpu *g = &current.gpus[(dev)->index]

static int is_mig_handle(nvmlDevice_t dev) {
    return dev >= &mig_handles[0][0] && dev < &mig_handles[0][0] + MAX_GPUS * MAX_MIG;
}

/* Spend the scenario's latency for this call on this device, without holding the lock, so that
 * calls on different GPUs overlap as they do with a real driver. Called with the lock held. */
static void take_time(const char *symbol, nvmlDevice_t dev) {
    int gpu = -2;
    if (dev && (is_mig_handle(dev) || (dev >= devices && dev < devices + MAX_GPUS)))
        gpu = (int)dev->index;
    unsigned long long us = 0;
    for (unsigned int i = 0; i < current.n_latencies; i++) {
        const struct latency *l = &current.latencies[i];
        if (strcmp(l->symbol, symbol) != 0) continue;
        if (l->gpu == gpu) {
            us = l->us;
            break;
        }
        if (l->gpu == -1) us = l->us;
    }
    if (!us) return;
    pthread_mutex_unlock(&lock);
    struct timespec pause = {(time_t)(us / 1000000), (long)(us % 1000000) * 1000};
    nanosleep(&pause, NULL);
    pthread_mutex_lock(&lock);
}

/* Whether a handle may be used: a MIG device handle only for calls that take one (others are
 * NOT_SUPPORTED there, as on real MIG devices) and while its MIG device exists. */
static nvmlReturn_t check_device(nvmlDevice_t dev, int mig_ok) {
    if (!initialised) return NVML_ERROR_UNINITIALIZED;
    int mig = dev && is_mig_handle(dev);
    if (!dev || (!mig && (dev < devices || dev >= devices + MAX_GPUS)))
        return NVML_ERROR_INVALID_ARGUMENT;
    if (dev->index >= current.count) return NVML_ERROR_GPU_IS_LOST;
    struct gpu *g = &current.gpus[dev->index];
    if (g->state != NVML_SUCCESS || !mig) return g->state;
    if (!mig_ok) return NVML_ERROR_NOT_SUPPORTED;
    if (!g->val[V_MIG_MODE] || !g->migs[dev->mig - 1].present) return NVML_ERROR_INVALID_ARGUMENT;
    return NVML_SUCCESS;
}

static nvmlReturn_t done(nvmlReturn_t ret) {
    pthread_mutex_unlock(&lock);
    return ret;
}

/* Copies value v of GPU g into *out, or reports why it cannot. Called with the lock held. */
static nvmlReturn_t read_value(struct gpu *g, enum value v, unsigned long long *out) {
    nvmlReturn_t fail = g->fail[value_field[v]];
    if (fail != NVML_SUCCESS) return fail;
    if (!g->has[v]) return NVML_ERROR_NOT_SUPPORTED;
    *out = g->val[v];
    return NVML_SUCCESS;
}

#define UINT_GETTER(symbol, v)                                                      \
    nvmlReturn_t symbol(nvmlDevice_t device, unsigned int *out) {                   \
        if (!out) return NVML_ERROR_INVALID_ARGUMENT;                               \
        DEVICE_CALL(#symbol, device);                                               \
        unsigned long long x = 0;                                                   \
        nvmlReturn_t r = read_value(g, v, &x);                                      \
        if (r == NVML_SUCCESS) *out = (unsigned int)x;                              \
        return done(r);                                                             \
    }

#define ULL_GETTER(symbol, v)                                                       \
    nvmlReturn_t symbol(nvmlDevice_t device, unsigned long long *out) {             \
        if (!out) return NVML_ERROR_INVALID_ARGUMENT;                               \
        DEVICE_CALL(#symbol, device);                                               \
        return done(read_value(g, v, out));                                         \
    }

#ifndef OMIT_nvmlInitWithFlags
nvmlReturn_t nvmlInitWithFlags(unsigned int flags) {
    (void)flags;
    pthread_mutex_lock(&lock);
    count_call("nvmlInitWithFlags");
    if (refresh() != 0) return done(NVML_ERROR_UNKNOWN);
    if (current.init_result != NVML_SUCCESS) return done(current.init_result);
    initialised++;
    return done(NVML_SUCCESS);
}
#endif

#ifndef OMIT_nvmlInit_v2
nvmlReturn_t nvmlInit_v2(void) { return nvmlInitWithFlags(0); }
#endif

#ifndef OMIT_nvmlShutdown
nvmlReturn_t nvmlShutdown(void) {
    pthread_mutex_lock(&lock);
    count_call("nvmlShutdown");
    if (!initialised) return done(NVML_ERROR_UNINITIALIZED);
    initialised--;
    return done(NVML_SUCCESS);
}
#endif

#ifndef OMIT_nvmlErrorString
const char *nvmlErrorString(nvmlReturn_t result) {
    for (size_t i = 0; i < sizeof error_names / sizeof error_names[0]; i++) {
        if (error_names[i].code == result) return error_names[i].name;
    }
    return "Unknown Error";
}
#endif

#ifndef OMIT_nvmlDeviceGetCount_v2
nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count) {
    if (!count) return NVML_ERROR_INVALID_ARGUMENT;
    pthread_mutex_lock(&lock);
    count_call("nvmlDeviceGetCount_v2");
    refresh();
    if (!initialised) return done(NVML_ERROR_UNINITIALIZED);
    *count = current.count;
    return done(NVML_SUCCESS);
}
#endif

#ifndef OMIT_nvmlDeviceGetHandleByIndex_v2
nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device) {
    if (!device) return NVML_ERROR_INVALID_ARGUMENT;
    pthread_mutex_lock(&lock);
    count_call("nvmlDeviceGetHandleByIndex_v2");
    refresh();
    if (!initialised) return done(NVML_ERROR_UNINITIALIZED);
    if (index >= current.count) return done(NVML_ERROR_INVALID_ARGUMENT);
    if (current.gpus[index].state != NVML_SUCCESS) return done(current.gpus[index].state);
    devices[index].index = index;
    *device = &devices[index];
    return done(NVML_SUCCESS);
}
#endif

static nvmlReturn_t copy_text(const char *text, char *out, unsigned int length) {
    if (strlen(text) + 1 > length) return NVML_ERROR_INSUFFICIENT_SIZE;
    memcpy(out, text, strlen(text) + 1);
    return NVML_SUCCESS;
}

#ifndef OMIT_nvmlDeviceGetName
nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char *name, unsigned int length) {
    if (!name) return NVML_ERROR_INVALID_ARGUMENT;
    MIG_DEVICE_CALL("nvmlDeviceGetName", device);
    if (g->fail[F_NAME] != NVML_SUCCESS) return done(g->fail[F_NAME]);
    return done(copy_text(m ? m->name : g->name, name, length));
}
#endif

#ifndef OMIT_nvmlDeviceGetUUID
nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t device, char *uuid, unsigned int length) {
    if (!uuid) return NVML_ERROR_INVALID_ARGUMENT;
    MIG_DEVICE_CALL("nvmlDeviceGetUUID", device);
    if (g->fail[F_UUID] != NVML_SUCCESS) return done(g->fail[F_UUID]);
    return done(copy_text(m ? m->uuid : g->uuid, uuid, length));
}
#endif

#ifndef OMIT_nvmlDeviceGetUtilizationRates
nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t device, nvmlUtilization_t *util) {
    if (!util) return NVML_ERROR_INVALID_ARGUMENT;
    DEVICE_CALL("nvmlDeviceGetUtilizationRates", device);
    unsigned long long gpu_, mem;
    nvmlReturn_t r = read_value(g, V_UTIL_GPU, &gpu_);
    if (r == NVML_SUCCESS) r = read_value(g, V_UTIL_MEMORY, &mem);
    if (r == NVML_SUCCESS) {
        util->gpu = (unsigned int)gpu_;
        util->memory = (unsigned int)mem;
    }
    return done(r);
}
#endif

/* total, used (excluding reserved) and reserved memory of GPU g, or of its MIG device mig. */
static nvmlReturn_t read_memory(struct gpu *g, const struct mig_dev *mig, unsigned long long m[3]) {
    if (mig) {
        if (g->fail[F_MEMORY] != NVML_SUCCESS) return g->fail[F_MEMORY];
        m[0] = mig->memory_total;
        m[1] = mig->memory_used;
        m[2] = 0;
        return NVML_SUCCESS;
    }
    nvmlReturn_t r = read_value(g, V_MEMORY_TOTAL, &m[0]);
    if (r == NVML_SUCCESS) r = read_value(g, V_MEMORY_USED, &m[1]);
    m[2] = g->has[V_MEMORY_RESERVED] ? g->val[V_MEMORY_RESERVED] : 0;
    return r;
}

#ifndef OMIT_nvmlDeviceGetMemoryInfo
nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *memory) {
    if (!memory) return NVML_ERROR_INVALID_ARGUMENT;
    MIG_DEVICE_CALL("nvmlDeviceGetMemoryInfo", device);
    unsigned long long mem[3];
    nvmlReturn_t r = read_memory(g, m, mem);
    if (r == NVML_SUCCESS) { /* v1 counts reserved memory as used */
        memory->total = mem[0];
        memory->used = mem[1] + mem[2];
        memory->free = mem[0] - mem[1] - mem[2];
    }
    return done(r);
}
#endif

#ifndef OMIT_nvmlDeviceGetMemoryInfo_v2
nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t device, nvmlMemory_v2_t *memory) {
    if (!memory) return NVML_ERROR_INVALID_ARGUMENT;
    MIG_DEVICE_CALL("nvmlDeviceGetMemoryInfo_v2", device);
    if (memory->version != nvmlMemory_v2) return done(NVML_ERROR_ARGUMENT_VERSION_MISMATCH);
    unsigned long long mem[3];
    nvmlReturn_t r = read_memory(g, m, mem);
    if (r == NVML_SUCCESS) {
        memory->total = mem[0];
        memory->used = mem[1];
        memory->reserved = mem[2];
        memory->free = mem[0] - mem[1] - mem[2];
    }
    return done(r);
}
#endif

#ifndef OMIT_nvmlDeviceGetTemperature
nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t device, nvmlTemperatureSensors_t sensor,
                                      unsigned int *temp) {
    if (!temp || sensor != NVML_TEMPERATURE_GPU) return NVML_ERROR_INVALID_ARGUMENT;
    DEVICE_CALL("nvmlDeviceGetTemperature", device);
    unsigned long long t;
    nvmlReturn_t r = read_value(g, V_TEMPERATURE, &t);
    if (r == NVML_SUCCESS) *temp = (unsigned int)t;
    return done(r);
}
#endif

#ifndef OMIT_nvmlDeviceGetTemperatureV
nvmlReturn_t nvmlDeviceGetTemperatureV(nvmlDevice_t device, nvmlTemperature_t *temp) {
    if (!temp || temp->sensorType != NVML_TEMPERATURE_GPU) return NVML_ERROR_INVALID_ARGUMENT;
    DEVICE_CALL("nvmlDeviceGetTemperatureV", device);
    if (temp->version != nvmlTemperature_v1) return done(NVML_ERROR_ARGUMENT_VERSION_MISMATCH);
    unsigned long long t;
    nvmlReturn_t r = read_value(g, V_TEMPERATURE, &t);
    if (r == NVML_SUCCESS) temp->temperature = (int)t;
    return done(r);
}
#endif

#ifndef OMIT_nvmlDeviceGetPowerUsage
UINT_GETTER(nvmlDeviceGetPowerUsage, V_POWER_MW)
#endif
#ifndef OMIT_nvmlDeviceGetEnforcedPowerLimit
UINT_GETTER(nvmlDeviceGetEnforcedPowerLimit, V_POWER_LIMIT_MW)
#endif
#ifndef OMIT_nvmlDeviceGetFanSpeed
UINT_GETTER(nvmlDeviceGetFanSpeed, V_FAN)
#endif
#ifndef OMIT_nvmlDeviceGetCurrentClocksEventReasons
ULL_GETTER(nvmlDeviceGetCurrentClocksEventReasons, V_THROTTLE)
#endif
#ifndef OMIT_nvmlDeviceGetCurrentClocksThrottleReasons
ULL_GETTER(nvmlDeviceGetCurrentClocksThrottleReasons, V_THROTTLE) /* before driver 535 */
#endif
#ifndef OMIT_nvmlDeviceGetTotalEnergyConsumption
/* energy_mj, plus energy_rate_mw x the wall-clock seconds since the epoch where a rate is set:
 * a counter that runs in real time, for tests through a running service. */
nvmlReturn_t nvmlDeviceGetTotalEnergyConsumption(nvmlDevice_t device, unsigned long long *out) {
    if (!out) return NVML_ERROR_INVALID_ARGUMENT;
    DEVICE_CALL("nvmlDeviceGetTotalEnergyConsumption", device);
    nvmlReturn_t r = read_value(g, V_ENERGY_MJ, out);
    if (r == NVML_SUCCESS && g->has[V_ENERGY_RATE]) {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        double seconds = (double)now.tv_sec + now.tv_nsec / 1e9;
        *out += (unsigned long long)((double)g->val[V_ENERGY_RATE] * seconds);
    }
    return done(r);
}
#endif

#ifndef OMIT_nvmlDeviceGetFieldValues
/* Field values: the ones the scenario can give are answered, every other field NOT_SUPPORTED. */
nvmlReturn_t nvmlDeviceGetFieldValues(nvmlDevice_t device, int count, nvmlFieldValue_t *values) {
    if (!values || count < 0) return NVML_ERROR_INVALID_ARGUMENT;
    DEVICE_CALL("nvmlDeviceGetFieldValues", device);
    for (int i = 0; i < count; i++) {
        nvmlFieldValue_t *v = &values[i];
        unsigned long long x = 0;
        v->timestamp = 1795000000000000LL;
        v->latencyUsec = 0;
        v->nvmlReturn = NVML_ERROR_NOT_SUPPORTED;
        if (v->fieldId == NVML_FI_DEV_MEMORY_TEMP) {
            v->nvmlReturn = read_value(g, V_MEMORY_TEMPERATURE, &x);
            v->valueType = NVML_VALUE_TYPE_UNSIGNED_INT;
            v->value.uiVal = (unsigned int)x;
        } else if (v->fieldId == NVML_FI_DEV_PCIE_REPLAY_COUNTER) {
            v->nvmlReturn = read_value(g, V_PCIE_REPLAY, &x);
            v->valueType = NVML_VALUE_TYPE_UNSIGNED_LONG_LONG;
            v->value.ullVal = x;
        }
    }
    return done(NVML_SUCCESS);
}
#endif

#ifndef OMIT_nvmlDeviceGetPerformanceState
nvmlReturn_t nvmlDeviceGetPerformanceState(nvmlDevice_t device, nvmlPstates_t *state) {
    if (!state) return NVML_ERROR_INVALID_ARGUMENT;
    DEVICE_CALL("nvmlDeviceGetPerformanceState", device);
    unsigned long long p;
    nvmlReturn_t r = read_value(g, V_PSTATE, &p);
    if (r == NVML_SUCCESS) *state = (nvmlPstates_t)p;
    return done(r);
}
#endif

#ifndef OMIT_nvmlDeviceGetClockInfo
nvmlReturn_t nvmlDeviceGetClockInfo(nvmlDevice_t device, nvmlClockType_t type,
                                    unsigned int *clock) {
    enum value v = type == NVML_CLOCK_GRAPHICS ? V_CLOCK_GRAPHICS
                   : type == NVML_CLOCK_SM     ? V_CLOCK_SM
                   : type == NVML_CLOCK_MEM    ? V_CLOCK_MEMORY
                                               : V_COUNT;
    if (!clock || v == V_COUNT) return NVML_ERROR_INVALID_ARGUMENT;
    DEVICE_CALL("nvmlDeviceGetClockInfo", device);
    unsigned long long c;
    nvmlReturn_t r = read_value(g, v, &c);
    if (r == NVML_SUCCESS) *clock = (unsigned int)c;
    return done(r);
}
#endif

static nvmlReturn_t read_codec(nvmlDevice_t device, const char *fn, enum value v,
                               unsigned int *util, unsigned int *period) {
    if (!util || !period) return NVML_ERROR_INVALID_ARGUMENT;
    DEVICE_CALL(fn, device);
    unsigned long long u;
    nvmlReturn_t r = read_value(g, v, &u);
    if (r == NVML_SUCCESS) {
        *util = (unsigned int)u;
        *period = 167000;
    }
    return done(r);
}

#ifndef OMIT_nvmlDeviceGetEncoderUtilization
nvmlReturn_t nvmlDeviceGetEncoderUtilization(nvmlDevice_t device, unsigned int *util,
                                             unsigned int *period) {
    return read_codec(device, "nvmlDeviceGetEncoderUtilization", V_ENCODER, util, period);
}
#endif

#ifndef OMIT_nvmlDeviceGetDecoderUtilization
nvmlReturn_t nvmlDeviceGetDecoderUtilization(nvmlDevice_t device, unsigned int *util,
                                             unsigned int *period) {
    return read_codec(device, "nvmlDeviceGetDecoderUtilization", V_DECODER, util, period);
}
#endif

#ifndef OMIT_nvmlDeviceGetPcieThroughput
nvmlReturn_t nvmlDeviceGetPcieThroughput(nvmlDevice_t device, nvmlPcieUtilCounter_t counter,
                                         unsigned int *value) {
    enum value v = counter == NVML_PCIE_UTIL_TX_BYTES   ? V_PCIE_TX_KB
                   : counter == NVML_PCIE_UTIL_RX_BYTES ? V_PCIE_RX_KB
                                                        : V_COUNT;
    if (!value || v == V_COUNT) return NVML_ERROR_INVALID_ARGUMENT;
    DEVICE_CALL("nvmlDeviceGetPcieThroughput", device);
    unsigned long long x;
    nvmlReturn_t r = read_value(g, v, &x);
    if (r == NVML_SUCCESS) *value = (unsigned int)x;
    return done(r);
}
#endif

#ifndef OMIT_nvmlDeviceGetEccMode
nvmlReturn_t nvmlDeviceGetEccMode(nvmlDevice_t device, nvmlEnableState_t *cur,
                                  nvmlEnableState_t *pending) {
    if (!cur || !pending) return NVML_ERROR_INVALID_ARGUMENT;
    DEVICE_CALL("nvmlDeviceGetEccMode", device);
    unsigned long long on;
    nvmlReturn_t r = read_value(g, V_ECC_ENABLED, &on);
    if (r == NVML_SUCCESS) *cur = *pending = on ? NVML_FEATURE_ENABLED : NVML_FEATURE_DISABLED;
    return done(r);
}
#endif

#ifndef OMIT_nvmlDeviceGetTotalEccErrors
nvmlReturn_t nvmlDeviceGetTotalEccErrors(nvmlDevice_t device, nvmlMemoryErrorType_t type,
                                         nvmlEccCounterType_t counter,
                                         unsigned long long *count) {
    if (!count || (counter != NVML_VOLATILE_ECC && counter != NVML_AGGREGATE_ECC))
        return NVML_ERROR_INVALID_ARGUMENT;
    int aggregate = counter == NVML_AGGREGATE_ECC;
    enum value v = type == NVML_MEMORY_ERROR_TYPE_CORRECTED
                       ? (aggregate ? V_ECC_CORRECTED_AGGREGATE : V_ECC_CORRECTED)
                   : type == NVML_MEMORY_ERROR_TYPE_UNCORRECTED
                       ? (aggregate ? V_ECC_UNCORRECTED_AGGREGATE : V_ECC_UNCORRECTED)
                       : V_COUNT;
    if (v == V_COUNT) return NVML_ERROR_INVALID_ARGUMENT;
    DEVICE_CALL("nvmlDeviceGetTotalEccErrors", device);
    if (!g->has[V_ECC_ENABLED] || !g->val[V_ECC_ENABLED]) return done(NVML_ERROR_NOT_SUPPORTED);
    return done(read_value(g, v, count));
}
#endif

#ifndef OMIT_nvmlDeviceGetRemappedRows
nvmlReturn_t nvmlDeviceGetRemappedRows(nvmlDevice_t device, unsigned int *corr, unsigned int *unc,
                                       unsigned int *pending, unsigned int *failure) {
    if (!corr || !unc || !pending || !failure) return NVML_ERROR_INVALID_ARGUMENT;
    DEVICE_CALL("nvmlDeviceGetRemappedRows", device);
    unsigned long long c, u, p, f;
    nvmlReturn_t r = read_value(g, V_REMAP_CORRECTABLE, &c);
    if (r == NVML_SUCCESS) r = read_value(g, V_REMAP_UNCORRECTABLE, &u);
    if (r == NVML_SUCCESS) r = read_value(g, V_REMAP_PENDING, &p);
    if (r == NVML_SUCCESS) r = read_value(g, V_REMAP_FAILURE, &f);
    if (r == NVML_SUCCESS) {
        *corr = (unsigned int)c;
        *unc = (unsigned int)u;
        *pending = (unsigned int)p;
        *failure = (unsigned int)f;
    }
    return done(r);
}
#endif

#ifndef OMIT_nvmlDeviceGetRetiredPages
/* The two-call protocol, with made-up page addresses: how many pages matters, not where. */
nvmlReturn_t nvmlDeviceGetRetiredPages(nvmlDevice_t device, nvmlPageRetirementCause_t cause,
                                       unsigned int *count, unsigned long long *addresses) {
    if (!count) return NVML_ERROR_INVALID_ARGUMENT;
    enum value v = cause == NVML_PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS ? V_RETIRED_SBE
                   : cause == NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR     ? V_RETIRED_DBE
                                                                                  : V_COUNT;
    if (v == V_COUNT) return NVML_ERROR_INVALID_ARGUMENT;
    DEVICE_CALL("nvmlDeviceGetRetiredPages", device);
    unsigned long long n;
    nvmlReturn_t r = read_value(g, v, &n);
    if (r != NVML_SUCCESS) return done(r);
    if (*count < n || (n > 0 && !addresses)) {
        *count = (unsigned int)n;
        return done(NVML_ERROR_INSUFFICIENT_SIZE);
    }
    for (unsigned long long i = 0; i < n; i++) addresses[i] = 0x1000 * (i + 1);
    *count = (unsigned int)n;
    return done(NVML_SUCCESS);
}
#endif

#ifndef OMIT_nvmlDeviceGetRetiredPagesPendingStatus
nvmlReturn_t nvmlDeviceGetRetiredPagesPendingStatus(nvmlDevice_t device,
                                                    nvmlEnableState_t *pending) {
    if (!pending) return NVML_ERROR_INVALID_ARGUMENT;
    DEVICE_CALL("nvmlDeviceGetRetiredPagesPendingStatus", device);
    unsigned long long p;
    nvmlReturn_t r = read_value(g, V_RETIRED_PENDING, &p);
    if (r == NVML_SUCCESS) *pending = p ? NVML_FEATURE_ENABLED : NVML_FEATURE_DISABLED;
    return done(r);
}
#endif

/* NVLink: links 0 .. nvlink_links-1 exist, the first nvlink_active of them are up, and each up
 * link has the same error counters. A link beyond them, or any on a GPU without nvlink_links,
 * is NOT_SUPPORTED, as NVML answers on a GPU without NVLink. */
static nvmlReturn_t nvlink(struct gpu *g, unsigned int link, unsigned long long *active) {
    unsigned long long links;
    nvmlReturn_t r = read_value(g, V_NVLINK_LINKS, &links);
    if (r != NVML_SUCCESS) return r;
    if (link >= links || link >= NVML_NVLINK_MAX_LINKS) return NVML_ERROR_INVALID_ARGUMENT;
    unsigned long long up = 0;
    r = read_value(g, V_NVLINK_ACTIVE, &up);
    if (r != NVML_SUCCESS) return r;
    *active = link < up;
    return NVML_SUCCESS;
}

#ifndef OMIT_nvmlDeviceGetNvLinkState
nvmlReturn_t nvmlDeviceGetNvLinkState(nvmlDevice_t device, unsigned int link,
                                      nvmlEnableState_t *isActive) {
    if (!isActive) return NVML_ERROR_INVALID_ARGUMENT;
    DEVICE_CALL("nvmlDeviceGetNvLinkState", device);
    unsigned long long active;
    nvmlReturn_t r = nvlink(g, link, &active);
    if (r == NVML_SUCCESS) *isActive = active ? NVML_FEATURE_ENABLED : NVML_FEATURE_DISABLED;
    return done(r);
}
#endif

#ifndef OMIT_nvmlDeviceGetNvLinkErrorCounter
nvmlReturn_t nvmlDeviceGetNvLinkErrorCounter(nvmlDevice_t device, unsigned int link,
                                             nvmlNvLinkErrorCounter_t counter,
                                             unsigned long long *value) {
    if (!value) return NVML_ERROR_INVALID_ARGUMENT;
    enum value v = counter == NVML_NVLINK_ERROR_DL_CRC_FLIT  ? V_NVLINK_CRC
                   : counter == NVML_NVLINK_ERROR_DL_REPLAY   ? V_NVLINK_REPLAY
                   : counter == NVML_NVLINK_ERROR_DL_RECOVERY ? V_NVLINK_RECOVERY
                                                              : V_COUNT;
    if (v == V_COUNT) return NVML_ERROR_NOT_SUPPORTED;
    DEVICE_CALL("nvmlDeviceGetNvLinkErrorCounter", device);
    unsigned long long active;
    nvmlReturn_t r = nvlink(g, link, &active);
    if (r == NVML_SUCCESS) r = read_value(g, v, value);
    return done(r);
}
#endif

/* ---- events: Xid errors the scenario lists, each delivered once, in order ------------------ */

struct nvmlEventSet_st {
    unsigned long long registered[MAX_GPUS]; /* event types per GPU */
};
static struct nvmlEventSet_st event_set;
/* Per GPU, how many of the scenario's Xids the set has seen: events from before the set was
 * created are not delivered (as with NVML), later ones once each, across scenario reloads. */
static unsigned int xids_delivered[MAX_GPUS];

#ifndef OMIT_nvmlEventSetCreate
nvmlReturn_t nvmlEventSetCreate(nvmlEventSet_t *set) {
    if (!set) return NVML_ERROR_INVALID_ARGUMENT;
    pthread_mutex_lock(&lock);
    count_call("nvmlEventSetCreate");
    if (!initialised) return done(NVML_ERROR_UNINITIALIZED);
    refresh();
    memset(&event_set, 0, sizeof event_set);
    for (unsigned int i = 0; i < MAX_GPUS; i++) xids_delivered[i] = current.gpus[i].n_xids;
    *set = &event_set;
    return done(NVML_SUCCESS);
}
#endif

#ifndef OMIT_nvmlDeviceGetSupportedEventTypes
nvmlReturn_t nvmlDeviceGetSupportedEventTypes(nvmlDevice_t device, unsigned long long *types) {
    if (!types) return NVML_ERROR_INVALID_ARGUMENT;
    DEVICE_CALL("nvmlDeviceGetSupportedEventTypes", device);
    if (g->fail[F_EVENTS] != NVML_SUCCESS) return done(g->fail[F_EVENTS]);
    *types = nvmlEventTypeXidCriticalError;
    return done(NVML_SUCCESS);
}
#endif

#ifndef OMIT_nvmlDeviceRegisterEvents
nvmlReturn_t nvmlDeviceRegisterEvents(nvmlDevice_t device, unsigned long long types,
                                      nvmlEventSet_t set) {
    if (!set) return NVML_ERROR_INVALID_ARGUMENT;
    DEVICE_CALL("nvmlDeviceRegisterEvents", device);
    if (g->fail[F_EVENTS] != NVML_SUCCESS) return done(g->fail[F_EVENTS]);
    if (types & ~(unsigned long long)nvmlEventTypeXidCriticalError)
        return done(NVML_ERROR_NOT_SUPPORTED);
    set->registered[device->index] |= types;
    return done(NVML_SUCCESS);
}
#endif

#ifndef OMIT_nvmlEventSetWait_v2
nvmlReturn_t nvmlEventSetWait_v2(nvmlEventSet_t set, nvmlEventData_t *data, unsigned int timeoutms) {
    if (!set || !data) return NVML_ERROR_INVALID_ARGUMENT;
    for (unsigned int waited = 0;; waited += 5) {
        pthread_mutex_lock(&lock);
        count_call("nvmlEventSetWait_v2");
        if (!initialised) return done(NVML_ERROR_UNINITIALIZED);
        refresh();
        for (unsigned int i = 0; i < current.count; i++) {
            struct gpu *g = &current.gpus[i];
            if (!(set->registered[i] & nvmlEventTypeXidCriticalError)) continue;
            if (xids_delivered[i] >= g->n_xids) continue;
            devices[i].index = i;
            data->device = &devices[i];
            data->eventType = nvmlEventTypeXidCriticalError;
            data->eventData = g->xids[xids_delivered[i]++];
            data->gpuInstanceId = 0xFFFFFFFFu;
            data->computeInstanceId = 0xFFFFFFFFu;
            return done(NVML_SUCCESS);
        }
        pthread_mutex_unlock(&lock);
        if (waited >= timeoutms) return NVML_ERROR_TIMEOUT;
        struct timespec pause = {0, 5 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
}
#endif

#ifndef OMIT_nvmlEventSetFree
nvmlReturn_t nvmlEventSetFree(nvmlEventSet_t set) {
    if (!set) return NVML_ERROR_INVALID_ARGUMENT;
    pthread_mutex_lock(&lock);
    count_call("nvmlEventSetFree");
    memset(set, 0, sizeof *set);
    return done(NVML_SUCCESS);
}
#endif

/* Appends a process list to out (up to MAX_PROCS), with the instance ids of mig (or none). */
static unsigned int gather(nvmlProcessInfo_t *out, unsigned int n, const struct proc *list,
                           unsigned int count, const struct mig_dev *mig) {
    for (unsigned int i = 0; i < count && n < MAX_PROCS; i++, n++) {
        out[n].pid = list[i].pid;
        out[n].usedGpuMemory = list[i].used;
        out[n].gpuInstanceId = mig ? mig->gi : 0xFFFFFFFFu;
        out[n].computeInstanceId = mig ? mig->ci : 0xFFFFFFFFu;
    }
    return n;
}

/* The two-call protocol: with too small a buffer (or none), say how many and refuse. On a GPU
 * in MIG mode the whole GPU's compute list also holds every MIG device's processes, with their
 * instance ids (what NVML gives a privileged caller); a MIG device's handle lists its own. */
static nvmlReturn_t list_processes(struct gpu *g, const struct mig_dev *mig, int compute,
                                   unsigned int *count, nvmlProcessInfo_t *infos) {
    enum field f = compute ? F_COMPUTE_PROCESSES : F_GRAPHICS_PROCESSES;
    if (g->fail[f] != NVML_SUCCESS) return g->fail[f];
    if (mig && g->fail[F_MIG_PROCESSES] != NVML_SUCCESS) return g->fail[F_MIG_PROCESSES];
    static nvmlProcessInfo_t all[MAX_PROCS];
    unsigned int n = 0;
    if (mig) {
        if (compute) n = gather(all, 0, mig->compute, mig->n_compute, mig);
    } else if (compute) {
        n = gather(all, 0, g->compute, g->n_compute, NULL);
        for (int k = 0; g->val[V_MIG_MODE] && k < MAX_MIG; k++) {
            if (g->migs[k].present)
                n = gather(all, n, g->migs[k].compute, g->migs[k].n_compute, &g->migs[k]);
        }
    } else {
        n = gather(all, 0, g->graphics, g->n_graphics, NULL);
    }
    if (*count < n || (n > 0 && !infos)) {
        *count = n;
        return NVML_ERROR_INSUFFICIENT_SIZE;
    }
    for (unsigned int i = 0; i < n; i++) {
        infos[i].pid = all[i].pid;
        infos[i].usedGpuMemory = all[i].usedGpuMemory;
        infos[i].gpuInstanceId = all[i].gpuInstanceId;
        infos[i].computeInstanceId = all[i].computeInstanceId;
    }
    *count = n;
    return NVML_SUCCESS;
}

#ifndef OMIT_nvmlDeviceGetComputeRunningProcesses_v3
nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t device, unsigned int *count,
                                                     nvmlProcessInfo_t *infos) {
    if (!count) return NVML_ERROR_INVALID_ARGUMENT;
    MIG_DEVICE_CALL("nvmlDeviceGetComputeRunningProcesses_v3", device);
    return done(list_processes(g, m, 1, count, infos));
}
#endif

#ifndef OMIT_nvmlDeviceGetGraphicsRunningProcesses_v3
nvmlReturn_t nvmlDeviceGetGraphicsRunningProcesses_v3(nvmlDevice_t device, unsigned int *count,
                                                      nvmlProcessInfo_t *infos) {
    if (!count) return NVML_ERROR_INVALID_ARGUMENT;
    MIG_DEVICE_CALL("nvmlDeviceGetGraphicsRunningProcesses_v3", device);
    return done(list_processes(g, m, 0, count, infos));
}
#endif

#ifndef OMIT_nvmlDeviceGetProcessUtilization
nvmlReturn_t nvmlDeviceGetProcessUtilization(nvmlDevice_t device,
                                             nvmlProcessUtilizationSample_t *samples,
                                             unsigned int *count,
                                             unsigned long long last_seen) {
    if (!count) return NVML_ERROR_INVALID_ARGUMENT;
    DEVICE_CALL("nvmlDeviceGetProcessUtilization", device);
    (void)last_seen; /* every call is a fresh sample window */
    if (g->fail[F_PROCESS_UTILIZATION] != NVML_SUCCESS) return done(g->fail[F_PROCESS_UTILIZATION]);
    if (g->n_util == 0) return done(NVML_ERROR_NOT_FOUND);
    if (!samples || *count < g->n_util) {
        *count = g->n_util;
        return done(NVML_ERROR_INSUFFICIENT_SIZE);
    }
    util_clock++;
    for (unsigned int i = 0; i < g->n_util; i++) {
        memset(&samples[i], 0, sizeof samples[i]);
        samples[i].pid = g->util[i].pid;
        samples[i].smUtil = g->util[i].sm;
        samples[i].timeStamp = util_clock;
    }
    *count = g->n_util;
    return done(NVML_SUCCESS);
}
#endif

/* ---- MIG: devices 0 .. MAX_MIG-1 of a GPU whose mig_mode is 1, where the scenario made them --- */

#ifndef OMIT_nvmlDeviceGetMigMode
nvmlReturn_t nvmlDeviceGetMigMode(nvmlDevice_t device, unsigned int *cur, unsigned int *pending) {
    if (!cur || !pending) return NVML_ERROR_INVALID_ARGUMENT;
    DEVICE_CALL("nvmlDeviceGetMigMode", device);
    unsigned long long mode;
    nvmlReturn_t r = read_value(g, V_MIG_MODE, &mode);
    if (r == NVML_SUCCESS) *cur = *pending = mode ? NVML_DEVICE_MIG_ENABLE : NVML_DEVICE_MIG_DISABLE;
    return done(r);
}
#endif

#ifndef OMIT_nvmlDeviceGetMaxMigDeviceCount
nvmlReturn_t nvmlDeviceGetMaxMigDeviceCount(nvmlDevice_t device, unsigned int *count) {
    if (!count) return NVML_ERROR_INVALID_ARGUMENT;
    DEVICE_CALL("nvmlDeviceGetMaxMigDeviceCount", device);
    unsigned long long mode;
    nvmlReturn_t r = read_value(g, V_MIG_MODE, &mode);
    if (r == NVML_SUCCESS) *count = MAX_MIG - 1; /* 7, as on an A100 or H100 */
    return done(r);
}
#endif

#ifndef OMIT_nvmlDeviceGetMigDeviceHandleByIndex
nvmlReturn_t nvmlDeviceGetMigDeviceHandleByIndex(nvmlDevice_t device, unsigned int index,
                                                 nvmlDevice_t *mig) {
    if (!mig) return NVML_ERROR_INVALID_ARGUMENT;
    DEVICE_CALL("nvmlDeviceGetMigDeviceHandleByIndex", device);
    if (g->fail[F_MIG_DEVICES] != NVML_SUCCESS) return done(g->fail[F_MIG_DEVICES]);
    if (!g->val[V_MIG_MODE] || index >= MAX_MIG - 1) return done(NVML_ERROR_INVALID_ARGUMENT);
    if (!g->migs[index].present) return done(NVML_ERROR_NOT_FOUND);
    struct nvmlDevice_st *h = &mig_handles[device->index][index];
    h->index = device->index;
    h->mig = index + 1;
    *mig = h;
    return done(NVML_SUCCESS);
}
#endif

static nvmlReturn_t instance_id(nvmlDevice_t device, const char *fn, int compute,
                                unsigned int *id) {
    if (!id) return NVML_ERROR_INVALID_ARGUMENT;
    MIG_DEVICE_CALL(fn, device);
    (void)g;
    if (!m) return done(NVML_ERROR_INVALID_ARGUMENT); /* not a MIG device handle */
    *id = compute ? m->ci : m->gi;
    return done(NVML_SUCCESS);
}

#ifndef OMIT_nvmlDeviceGetGpuInstanceId
nvmlReturn_t nvmlDeviceGetGpuInstanceId(nvmlDevice_t device, unsigned int *id) {
    return instance_id(device, "nvmlDeviceGetGpuInstanceId", 0, id);
}
#endif

#ifndef OMIT_nvmlDeviceGetComputeInstanceId
nvmlReturn_t nvmlDeviceGetComputeInstanceId(nvmlDevice_t device, unsigned int *id) {
    return instance_id(device, "nvmlDeviceGetComputeInstanceId", 1, id);
}
#endif

/* ---- system: the driver's and CUDA's versions, from the scenario's driver and cuda lines ---- */

#ifndef OMIT_nvmlSystemGetDriverVersion
nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int length) {
    if (!version) return NVML_ERROR_INVALID_ARGUMENT;
    pthread_mutex_lock(&lock);
    count_call("nvmlSystemGetDriverVersion");
    if (!initialised) return done(NVML_ERROR_UNINITIALIZED);
    refresh();
    if (!current.driver[0]) return done(NVML_ERROR_NOT_SUPPORTED);
    return done(copy_text(current.driver, version, length));
}
#endif

#ifndef OMIT_nvmlSystemGetCudaDriverVersion_v2
nvmlReturn_t nvmlSystemGetCudaDriverVersion_v2(int *version) {
    if (!version) return NVML_ERROR_INVALID_ARGUMENT;
    pthread_mutex_lock(&lock);
    count_call("nvmlSystemGetCudaDriverVersion_v2");
    if (!initialised) return done(NVML_ERROR_UNINITIALIZED);
    refresh();
    if (!current.cuda) return done(NVML_ERROR_NOT_SUPPORTED);
    *version = (int)current.cuda;
    return done(NVML_SUCCESS);
}
#endif
