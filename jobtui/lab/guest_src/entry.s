# Multiboot (v1) entry for the jobtui lab guest. GNU as syntax, assembled with
# `as --32`, so no C preprocessor and no multilib are needed.

.set MB_MAGIC, 0x1BADB002
# bit 0: page-align modules (harmless); bit 1: ask for mem_* and the memory map.
# No bit 16: QEMU then loads us through our ELF program headers.
.set MB_FLAGS, (1 << 0) | (1 << 1)

.section .multiboot, "a"
.align 4
.long MB_MAGIC
.long MB_FLAGS
.long -(MB_MAGIC + MB_FLAGS)

.section .text
.globl _start
.type _start, @function
_start:
    # The loader gives us no usable stack; interrupts stay off for good because
    # we never install an IDT.
    cli
    movl $stack_top, %esp
    cld
    pushl %ebx              # multiboot info pointer
    pushl %eax              # loader magic (0x2BADB002)
    call kmain
1:  cli
    hlt
    jmp 1b

.section .bss
.align 16
stack_bottom:
.skip 16384
stack_top:

# Tell ld the stack need not be executable (silences its warning).
.section .note.GNU-stack, "", @progbits
