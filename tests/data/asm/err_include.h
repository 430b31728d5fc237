/* included by err_include.S; the error is on line 5, column 14 */
    nop
    mrs x0, sctlr_el1
    nop
    mrs x0, sctlr_el9
