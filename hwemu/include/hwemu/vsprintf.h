/* SPDX-License-Identifier: GPL-2.0 */
/*
 * hwemu: a small vsnprintf() for kernel C without libc (lib/vsprintf.c's role).
 * Flags "-0+ #", width and precision (also '*'), the length modifiers hh h l ll z t j,
 * the conversions d i u x X o c s %, and %p: %pS %ps %pB name a symbol (through
 * hwemu), every other %p<letters> prints the pointer as 16 hex digits.
 */
#ifndef _HWEMU_VSPRINTF_H
#define _HWEMU_VSPRINTF_H

#include <linux/types.h>
#include <linux/stdarg.h>
#include <hwemu/hw.h>

struct hw_out {
	char *buf;
	size_t size;
	size_t n;	/* what the whole output needs, without its NUL */
};

static inline void hw_out_c(struct hw_out *o, char c)
{
	if (o->n + 1 < o->size)
		o->buf[o->n] = c;
	o->n++;
}

static inline void hw_out_field(struct hw_out *o, const char *prefix, const char *s,
				int len, int zeros, int width, bool left, bool zero_pad)
{
	int plen = 0, pad;

	while (prefix[plen])
		plen++;
	pad = width - plen - zeros - len;
	if (zero_pad && !left && pad > 0) {
		zeros += pad;
		pad = 0;
	}
	for (; !left && pad > 0; pad--)
		hw_out_c(o, ' ');
	while (*prefix)
		hw_out_c(o, *prefix++);
	for (; zeros > 0; zeros--)
		hw_out_c(o, '0');
	for (int i = 0; i < len; i++)
		hw_out_c(o, s[i]);
	for (; pad > 0; pad--)
		hw_out_c(o, ' ');
}

static inline int hw_vsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
	struct hw_out o = { buf, size, 0 };
	static const char digits[] = "0123456789abcdef0123456789ABCDEF";

	for (; *fmt; fmt++) {
		bool left = false, zero = false, plus = false, space = false, alt = false;
		int width = 0, prec = -1, len = 0, base = 10, nd = 0;
		char tmp[160], conv;
		const char *prefix = "";
		unsigned long long u;

		if (*fmt != '%') {
			hw_out_c(&o, *fmt);
			continue;
		}
		for (fmt++;; fmt++) {
			if (*fmt == '-')
				left = true;
			else if (*fmt == '0')
				zero = true;
			else if (*fmt == '+')
				plus = true;
			else if (*fmt == ' ')
				space = true;
			else if (*fmt == '#')
				alt = true;
			else
				break;
		}
		if (*fmt == '*') {
			width = va_arg(ap, int);
			if (width < 0) {
				left = true;
				width = -width;
			}
			fmt++;
		}
		while (*fmt >= '0' && *fmt <= '9')
			width = width * 10 + *fmt++ - '0';
		if (*fmt == '.') {
			prec = 0;
			if (*++fmt == '*') {
				prec = va_arg(ap, int);
				fmt++;
			}
			while (*fmt >= '0' && *fmt <= '9')
				prec = prec * 10 + *fmt++ - '0';
		}
		for (;; fmt++) {
			if (*fmt == 'l' || *fmt == 'z' || *fmt == 't' || *fmt == 'j' ||
			    *fmt == 'L' || *fmt == 'q')
				len = 1;	/* all 64-bit here */
			else if (*fmt == 'h')
				len = len < 0 ? -2 : -1;
			else
				break;
		}
		conv = *fmt;
		switch (conv) {
		case '\0':
			fmt--;
			continue;
		case '%':
			hw_out_c(&o, '%');
			continue;
		case 'c':
			tmp[0] = (char)va_arg(ap, int);
			hw_out_field(&o, "", tmp, 1, 0, width, left, false);
			continue;
		case 's': {
			const char *s = va_arg(ap, const char *);
			int n = 0;

			if (!s)
				s = "(null)";
			while (s[n] && (prec < 0 || n < prec))
				n++;
			hw_out_field(&o, "", s, n, 0, width, left, false);
			continue;
		}
		case 'p': {
			void *p = va_arg(ap, void *);

			if (fmt[1] == 'S' || fmt[1] == 's' || fmt[1] == 'B') {
				int n = HW_RT(symbolize)(HW_PTR(p), tmp, sizeof(tmp));

				if (*++fmt == 's')
					for (int i = 0; i < n; i++)
						if (tmp[i] == '+')
							n = i;
				hw_out_field(&o, "", tmp, n, 0, width, left, false);
				continue;
			}
			while ((fmt[1] >= 'a' && fmt[1] <= 'z') || (fmt[1] >= 'A' && fmt[1] <= 'Z'))
				fmt++;
			u = (unsigned long)p;
			base = 16;
			prec = 16;
			break;
		}
		case 'd':
		case 'i': {
			long long v = len > 0 ? va_arg(ap, long long) : va_arg(ap, int);

			if (len == -1)
				v = (short)v;
			else if (len == -2)
				v = (signed char)v;
			u = v < 0 ? -(unsigned long long)v : (unsigned long long)v;
			prefix = v < 0 ? "-" : plus ? "+" : space ? " " : "";
			break;
		}
		case 'u':
		case 'x':
		case 'X':
		case 'o':
			u = len > 0 ? va_arg(ap, unsigned long long) : va_arg(ap, unsigned int);
			if (len == -1)
				u = (unsigned short)u;
			else if (len == -2)
				u = (unsigned char)u;
			base = conv == 'u' ? 10 : conv == 'o' ? 8 : 16;
			if (alt && u && base == 16)
				prefix = conv == 'x' ? "0x" : "0X";
			else if (alt && base == 8)
				prefix = "0";
			break;
		default:	/* not a conversion this knows: print it as it is */
			hw_out_c(&o, '%');
			hw_out_c(&o, conv);
			continue;
		}
		/* a number: digits backwards at the end of tmp */
		do {
			tmp[sizeof(tmp) - 1 - nd++] = digits[(conv == 'X' ? 16 : 0) + u % base];
			u /= base;
		} while (u);
		if (prec == 0 && nd == 1 && tmp[sizeof(tmp) - 1] == '0')
			nd = 0;
		hw_out_field(&o, prefix, tmp + sizeof(tmp) - nd, nd, prec > nd ? prec - nd : 0,
			     width, left, zero && prec < 0);
	}
	if (size)
		buf[o.n < size ? o.n : size - 1] = '\0';
	return (int)o.n;
}

static inline __printf(3, 4) int hw_snprintf(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = hw_vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	return n;
}

#endif
