/*
 * jobtui lab guest: fill guest RAM with pseudo-random data so that save, dump
 * and migration move real bytes (QEMU sends all-zero pages as a flag only).
 *
 * Booted by QEMU's multiboot loader in 32-bit protected mode, paging off, so
 * physical memory below 4 GiB is directly addressable. No libc, no libgcc
 * (plain gcc without multilib has no 32-bit libgcc): hence no 64-bit division.
 *
 * Kernel command line (QEMU prepends the kernel path):
 *   dirty=M   after the fill, keep rewriting M MiB forever
 *   rate=R    ...at about R MiB/s instead of as fast as possible
 * Serial (COM1) protocol, one line each:
 *   "jobtui-fill: done N MiB"
 *   "jobtui-fill: dirtying M MiB" (+ " at R MiB/s")
 */

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;

#define MB_LOADER_MAGIC 0x2BADB002u
#define MB_INFO_MEM (1u << 0)
#define MB_INFO_CMDLINE (1u << 2)
#define MB_INFO_MMAP (1u << 6)

#define MIB (1024u * 1024u)
/* Below this lie the kernel, its boot info (QEMU puts the command line right
   after the kernel image) and the BIOS areas. */
#define FILL_START (2u * MIB)
#define MAX_REGIONS 16

struct mb_info {
    u32 flags;
    u32 mem_lower;
    u32 mem_upper;
    u32 boot_device;
    u32 cmdline;
    u32 mods_count;
    u32 mods_addr;
    u32 syms[4];
    u32 mmap_length;
    u32 mmap_addr;
};

struct mb_mmap_entry {
    u32 size; /* of the rest of the entry, not counting this field */
    u64 addr;
    u64 len;
    u32 type; /* 1 = usable RAM */
} __attribute__((packed));

struct region {
    u32 start;
    u32 end; /* exclusive; 0 would mean 4 GiB, which we never reach */
};

extern char _end[];

static struct region regions[MAX_REGIONS];
static int nregions;

/* xorshift128 (Marsaglia): cheap enough that TCG's store path dominates. */
static u32 sx = 123456789u, sy = 362436069u, sz = 521288629u, sw = 88675123u;

static inline void outb(u16 port, u8 val)
{
    __asm__ volatile("outb %0, %1" : : "a"(val), "Nd"(port));
}

static inline u8 inb(u16 port)
{
    u8 val;
    __asm__ volatile("inb %1, %0" : "=a"(val) : "Nd"(port));
    return val;
}

static inline u64 rdtsc(void)
{
    u32 lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return ((u64)hi << 32) | lo;
}

#define COM1 0x3f8

static void serial_init(void)
{
    outb(COM1 + 1, 0x00); /* no interrupts */
    outb(COM1 + 3, 0x80); /* DLAB */
    outb(COM1 + 0, 0x01); /* 115200 baud */
    outb(COM1 + 1, 0x00);
    outb(COM1 + 3, 0x03); /* 8N1 */
    outb(COM1 + 2, 0xc7); /* FIFO on */
    outb(COM1 + 4, 0x03);
}

static void putc_serial(char c)
{
    while (!(inb(COM1 + 5) & 0x20))
        ;
    outb(COM1, (u8)c);
}

static void puts_serial(const char *s)
{
    while (*s)
        putc_serial(*s++);
}

static void putu_serial(u32 v)
{
    char buf[11];
    int i = 0;
    do {
        buf[i++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (i)
        putc_serial(buf[--i]);
}

/* Value of "key=<decimal>" as a whole word of the command line, or 0. */
static u32 cmdline_uint(const char *cmd, const char *key)
{
    const char *p = cmd;
    while (p && *p) {
        while (*p == ' ')
            p++;
        const char *k = key, *q = p;
        while (*k && *q == *k) {
            k++;
            q++;
        }
        if (!*k) {
            u32 v = 0;
            while (*q >= '0' && *q <= '9')
                v = v * 10 + (u32)(*q++ - '0');
            if (*q == 0 || *q == ' ')
                return v;
        }
        while (*p && *p != ' ')
            p++;
    }
    return 0;
}

static void add_region(u64 start, u64 end, u32 floor)
{
    /* Without paging we only reach the first 4 GiB; stop one page short so
       that `end` fits in 32 bits. */
    const u64 limit = 0xfffff000ull;
    if (start < floor)
        start = floor;
    if (end > limit)
        end = limit;
    start = (start + 4095) & ~4095ull;
    end &= ~4095ull;
    if (end <= start || nregions == MAX_REGIONS)
        return;
    regions[nregions].start = (u32)start;
    regions[nregions].end = (u32)end;
    nregions++;
}

static void find_ram(const struct mb_info *mbi, u32 floor)
{
    if (mbi->flags & MB_INFO_MMAP) {
        /* The BIOS e820 map: unlike mem_upper it excludes the ACPI tables
           SeaBIOS keeps at the top of RAM and the PCI hole. */
        u32 p = mbi->mmap_addr, end = mbi->mmap_addr + mbi->mmap_length;
        while (p < end) {
            const struct mb_mmap_entry *e = (const struct mb_mmap_entry *)p;
            if (e->type == 1)
                add_region(e->addr, e->addr + e->len, floor);
            p += e->size + 4;
        }
    }
    if (!nregions && (mbi->flags & MB_INFO_MEM))
        add_region(MIB, MIB + (u64)mbi->mem_upper * 1024, floor);
}

/* Four stores per round: fewer loop branches for TCG to translate. */
static void fill_range(u32 *p, u32 *end)
{
    u32 x = sx, y = sy, z = sz, w = sw, t;
#define STEP(out)                                          \
    t = x ^ (x << 11);                                     \
    x = y;                                                 \
    y = z;                                                 \
    z = w;                                                 \
    w = w ^ (w >> 19) ^ (t ^ (t >> 8));                    \
    (out) = w
    while (p + 4 <= end) {
        STEP(p[0]);
        STEP(p[1]);
        STEP(p[2]);
        STEP(p[3]);
        p += 4;
    }
    while (p < end) {
        STEP(*p);
        p++;
    }
#undef STEP
    sx = x;
    sy = y;
    sz = z;
    sw = w;
}

/* TSC ticks per microsecond, measured against 10 ms of PIT channel 2 (the
   PC speaker timer, polled through port 0x61: no interrupts needed). */
static u32 tsc_per_us(void)
{
    const u32 latch = 1193182 / 100;
    outb(0x61, (u8)((inb(0x61) & ~0x02) | 0x01)); /* gate on, speaker off */
    outb(0x43, 0xb0);                             /* ch 2, lo/hi, mode 0 */
    outb(0x42, (u8)(latch & 0xff));
    outb(0x42, (u8)(latch >> 8));
    u64 t0 = rdtsc();
    while (!(inb(0x61) & 0x20))
        ;
    u32 ticks = (u32)(rdtsc() - t0); /* 10 ms of a < 400 GHz TSC fits */
    u32 r = ticks / 10000;
    return r ? r : 1;
}

static void dirty_forever(u32 mib, u32 rate)
{
    u64 interval = 0, next = 0;
    if (rate) {
        interval = (u64)tsc_per_us() * (1000000u / rate);
        next = rdtsc();
    }
    for (;;) {
        u32 left = mib;
        for (int i = 0; i < nregions && left; i++) {
            for (u32 p = regions[i].start; p + MIB <= regions[i].end && left; p += MIB) {
                fill_range((u32 *)p, (u32 *)(p + MIB));
                left--;
                if (!rate)
                    continue;
                /* Busy-wait: without an IDT, hlt could never wake up. Do not
                   catch up after falling behind, or a stall becomes a burst. */
                next += interval;
                u64 now;
                while ((now = rdtsc()) < next)
                    __asm__ volatile("pause");
                if (now > next + interval)
                    next = now;
            }
        }
    }
}

void kmain(u32 magic, const struct mb_info *mbi)
{
    serial_init();
    if (magic != MB_LOADER_MAGIC) {
        puts_serial("jobtui-fill: not booted by a multiboot loader\n");
        return;
    }
    /* Read the command line before the fill could overwrite it. */
    const char *cmd = (mbi->flags & MB_INFO_CMDLINE) ? (const char *)mbi->cmdline : "";
    u32 dirty = cmdline_uint(cmd, "dirty=");
    u32 rate = cmdline_uint(cmd, "rate=");

    u32 floor = (u32)_end > FILL_START ? (u32)_end : FILL_START;
    find_ram(mbi, floor);
    if (!nregions) {
        puts_serial("jobtui-fill: no memory map\n");
        return;
    }

    u32 bytes_mib = 0;
    for (int i = 0; i < nregions; i++) {
        fill_range((u32 *)regions[i].start, (u32 *)regions[i].end);
        bytes_mib += (regions[i].end - regions[i].start) / MIB;
    }
    puts_serial("jobtui-fill: done ");
    putu_serial(bytes_mib);
    puts_serial(" MiB\n");

    if (!dirty)
        return; /* _start halts with interrupts off: the vCPU idles */
    if (dirty > bytes_mib)
        dirty = bytes_mib;
    puts_serial("jobtui-fill: dirtying ");
    putu_serial(dirty);
    puts_serial(" MiB");
    if (rate) {
        puts_serial(" at ");
        putu_serial(rate);
        puts_serial(" MiB/s");
    }
    putc_serial('\n');
    dirty_forever(dirty, rate);
}
