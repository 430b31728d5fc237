// EXPECT: err_error_directive.S:4:5: .error: this configuration is not supported
    .text
    .ifndef SUPPORTED
    .error "this configuration is not supported"
    .endif
