class DeclareLaunchArgument:
    def __init__(self, name, default_value=None, description="", choices=None, **kwargs):
        self.name, self.default_value, self.description, self.choices = name, default_value, description, choices


class IncludeLaunchDescription:
    def __init__(self, launch_description_source, launch_arguments=None, condition=None, **kwargs):
        self.source = launch_description_source
        self.launch_arguments = dict(launch_arguments or {})
        self.condition = condition


class GroupAction:
    def __init__(self, actions, condition=None, **kwargs):
        self.actions, self.condition = list(actions), condition


class SetEnvironmentVariable:
    def __init__(self, name, value, **kwargs):
        self.name, self.value = name, value
