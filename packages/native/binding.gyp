{
  "variables": {
    "mist_build_v4": "<!(node arch-flags.js --build-v4)"
  },
  "target_defaults": {
    "sources": [
      "<!@(node -e \"const fs=require('fs');console.log(fs.readdirSync('src',{recursive:true}).filter(f=>f.endsWith('.cc')).sort().map(f=>'src/'+f.split(require('path').sep).join('/')).join(' '))\")"
    ],
    "include_dirs": [
      "<!(node -p \"require('node-addon-api').include_dir\")",
      "src"
    ],
    "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
    "cflags!": ["-fno-exceptions"],
    "cflags_cc!": ["-fno-exceptions", "-fno-rtti"],
    "cflags_cc": ["-std=c++17", "-O3", "-fno-math-errno", "-fexceptions", "-pthread", "-Wall", "-Wno-unused-parameter", "-Wno-psabi"],
    "libraries": ["-ldl", "-pthread"]
  },
  "targets": [
    {
      "target_name": "mist_native",
      "cflags_cc": ["<!@(node arch-flags.js)"]
    }
  ],
  "conditions": [
    ["mist_build_v4==1", {
      "targets": [
        {
          "target_name": "mist_native_v4",
          "cflags_cc": ["-march=x86-64-v4"]
        }
      ]
    }]
  ]
}
