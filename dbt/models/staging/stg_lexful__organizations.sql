{{ lexful_current('base_lexful__organizations') }}
