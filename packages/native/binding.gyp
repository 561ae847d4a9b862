{
  "targets": [
    {
      "target_name": "mist_native",
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
      "cflags_cc": ["-std=c++17", "-O3", "-march=native", "-fno-math-errno", "-fexceptions", "-pthread", "-Wall", "-Wno-unused-parameter"],
      "libraries": ["-ldl", "-pthread"]
    }
  ]
}
