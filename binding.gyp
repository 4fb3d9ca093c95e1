{
  "targets": [
    {
      "target_name": "sockstate",
      "dependencies": [
        "<!(node -p \"require('node-addon-api').targets\"):node_addon_api"
      ],
      "defines": [
        "NAPI_VERSION=8",
        "NODE_ADDON_API_DISABLE_DEPRECATED",
        "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS"
      ],
      "sources": ["native/addon.cc"],
      "conditions": [
        ["OS=='linux'", {
          "sources": [
            "native/probe.cc",
            "native/tcp_info.cc",
            "native/sockopt.cc",
            "native/sweep.cc"
          ],
          "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-O2"]
        }]
      ]
    }
  ]
}
