// The instruction sets the addon's host code is compiled for (read by binding.gyp). The addon may run
// on another host than it was built on, so it never uses -march=native by default:
//   mist_native     x86-64-v3 (AVX2 + FMA: Intel Haswell 2013+, AMD Zen 1+, every current GPU server)
//                   on x86-64, the compiler's default elsewhere (aarch64's baseline has NEON);
//   mist_native_v4  x86-64-v4 (AVX-512 F/BW/CD/DQ/VL), built beside it on x86-64; the loader
//                   (src/addon.ts) picks it where the CPU has AVX-512, where the kernels run about
//                   twice as fast (they are written for 16-float vectors).
// MIST_NATIVE_ARCH overrides the first and skips the second, e.g. MIST_NATIVE_ARCH=native for a build
// that only ever runs where it is built, or x86-64 for CPUs without AVX2.
// Usage: node arch-flags.js            prints the -march flag of mist_native
//        node arch-flags.js --build-v4 prints 1 when mist_native_v4 is built, else 0
'use strict';
const override = process.env.MIST_NATIVE_ARCH;
const overridden = override !== undefined && override !== '';
if (process.argv.includes('--build-v4')) console.log(!overridden && process.arch === 'x64' ? '1' : '0');
else if (overridden) console.log(`-march=${override}`);
else if (process.arch === 'x64') console.log('-march=x86-64-v3');
else console.log('');
