{
  "targets": [
    {
      "target_name": "vfio",
      "sources": [
        "native/addon.cc",
        "native/ioctls.cc",
        "native/iommufd.cc",
        "native/migration.cc",
        "native/mapping.cc",
        "native/eventfd.cc",
        "native/uapi_check.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers"],
      "conditions": [["OS!='linux'", {"type": "none"}]]
    }
  ]
}
