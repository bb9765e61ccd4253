/*
 * A tiny bare-metal S-mode kernel with a RISC-V Linux Image header, for rvvmm's SBI and exit-status tests.
 * It prints through SBI DBCN (write and write_byte), checks that an SBI call rvvmm does not implement
 * answers SBI_ERR_NOT_SUPPORTED and that a DBCN buffer outside RAM answers SBI_ERR_INVALID_PARAM, then ends
 * the way MODE says:
 *   MODE 0: SBI SRST shutdown            -> rvvmm exits 0
 *   MODE 1: SBI SRST cold reboot         -> rvvmm exits 3
 *   MODE 2: SBI SRST shutdown, sysfail   -> rvvmm exits 4
 *   MODE 3: sifive_test fail (code 7)    -> rvvmm exits 4
 *   MODE 4: sifive_test pass (0x5555)    -> rvvmm exits 0
 * Built by resources/l1-initrd.sh with the riscv64 cross gcc.
 */
#ifndef MODE
#define MODE 0
#endif
#define SBI_EXT_DBCN 0x4442434E
#define SBI_EXT_SRST 0x53525354
#define SBI_EXT_EXPERIMENTAL 0x08000123

	.option norvc
	.section .text
	.globl _start
_start:
	j	entry			/* code0 */
	.word	0			/* code1 */
	.dword	0x200000		/* text_offset */
	.dword	_end - _start		/* image_size */
	.dword	0			/* flags */
	.word	2			/* version */
	.word	0			/* res1 */
	.dword	0			/* res2 */
	.ascii	"RISCV\0\0\0"		/* magic (deprecated) */
	.ascii	"RSC\x05"		/* magic2 */
	.word	0			/* res3 */

/* Strings first: the assembler needs their lengths before `li` uses them. */
hello:	.ascii "SBI-TEST hello from a bare-metal guest\n"
	.set hello_len, . - hello
wrote_ok: .ascii "SBI-DBCN-WRITE-OK\n"
	.set wrote_ok_len, . - wrote_ok
notsupp: .ascii "SBI-UNKNOWN-NOT-SUPPORTED\n"
	.set notsupp_len, . - notsupp
badaddr: .ascii "SBI-DBCN-BAD-ADDRESS-REFUSED\n"
	.set badaddr_len, . - badaddr
	.balign 4

.macro DBCN_WRITE label, len
	li	a7, SBI_EXT_DBCN
	li	a6, 0
	li	a0, \len
	lla	a1, \label
	li	a2, 0
	ecall
.endm

entry:
	mv	s0, a0			/* hart id */
	DBCN_WRITE hello, hello_len
	/* a0 = 0 (success), a1 = bytes written */
	bnez	a0, 1f
	li	t0, hello_len
	bne	a1, t0, 1f
	DBCN_WRITE wrote_ok, wrote_ok_len
1:
	/* write_byte: "B\n" */
	li	a7, SBI_EXT_DBCN
	li	a6, 2
	li	a0, 'B'
	ecall
	li	a0, '\n'
	ecall

	/* An extension rvvmm does not implement: KVM forwards experimental-range calls to userspace. */
	li	a7, SBI_EXT_EXPERIMENTAL
	li	a6, 0
	ecall
	li	t0, -2
	bne	a0, t0, 2f
	DBCN_WRITE notsupp, notsupp_len
2:
	/* A DBCN buffer that is not guest RAM. */
	li	a7, SBI_EXT_DBCN
	li	a6, 0
	li	a0, 16
	li	a1, 0x1000
	li	a2, 0
	ecall
	li	t0, -3
	bne	a0, t0, 3f
	DBCN_WRITE badaddr, badaddr_len
3:
#if MODE == 3 || MODE == 4
	li	t0, 0x100000
#if MODE == 3
	li	t1, (7 << 16) | 0x3333
#else
	li	t1, 0x5555
#endif
	sw	t1, 0(t0)
#else
	li	a7, SBI_EXT_SRST
	li	a6, 0
#if MODE == 1
	li	a0, 1			/* cold reboot */
	li	a1, 0
#elif MODE == 2
	li	a0, 0			/* shutdown */
	li	a1, 1			/* reason: system failure */
#else
	li	a0, 0
	li	a1, 0
#endif
	ecall
#endif
halt:
	wfi
	j	halt

	.balign 8
_end:
