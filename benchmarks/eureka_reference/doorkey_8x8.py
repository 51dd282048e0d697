# A hand-written reference reward for MiniGrid-DoorKey-8x8 (an upper reference for the Eureka benchmark, never a
# search result). Same contract and sandbox as the coder's candidates; it reads only what the coder is shown: the
# info keys of the prompt and, for the two milestones, the egocentric view before the step (the agent's own cell
# shows what it carries, the cell in front of it the door's state).
import numpy as np


def compute_reward(obs, action, next_obs, info):
    ax, ay = info["agent_x"], info["agent_y"]
    door_x, door_y, goal_x, goal_y = info["door_x"], info["door_y"], info["goal_x"], info["goal_y"]
    carrying_key = info["carrying"] == 5
    door_open = info["door_open"] == 1
    # the side of the door the goal is on: the agent has gone through once it is on that side
    side = 1 if goal_x >= door_x else -1
    through = door_open and (ax - door_x) * side > 0

    def near(x, y):  # 1 next to (x, y) or on it, falling to 0 ten cells away (Manhattan)
        return 1.0 - min(abs(ax - x) + abs(ay - y), 10) / 10.0

    # stage progress in [0, 4]: each milestone lifts it by one, the distance to the next subgoal fills the stage
    if through:
        progress = 3.0 + near(goal_x, goal_y)
    elif door_open:
        progress = 2.0 + near(door_x, door_y)
    elif carrying_key:
        progress = 1.0 + near(door_x, door_y)
    else:
        progress = near(info["key_x"], info["key_y"])
    # never positive per step: the remaining progress is a cost, so finishing sooner always pays
    remaining = -0.05 * (4.0 - progress) / 4.0
    # milestones as changes between the step's two states, so they are paid once: dropping the key or closing the
    # door takes back what picking it up or opening it paid, and no loop farms them
    before = np.asarray(obs)
    held_before = float(int(before[3, 6, 0]) == 5)  # the agent's own cell shows what it carries
    facing_door = int(before[3, 5, 0]) == 4  # only the door in front can change, and only by this step's toggle
    door_change = float(door_open) - float(int(before[3, 5, 2]) == 0) if facing_door else 0.0
    milestone = 0.5 * ((float(carrying_key) - held_before) + door_change)
    success = 2.0 * float(info.get("terminated", 0) and ax == goal_x and ay == goal_y)
    total = remaining + milestone + success
    return float(total), {"remaining": float(remaining), "milestone": float(milestone), "success": float(success)}
